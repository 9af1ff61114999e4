"""The image engine: a base pipeline on the best device, a kohya LoRA on it, one image per call.

Every input that decides an image is in a :class:`Request` plus the engine's :meth:`record`, so
an image can be drawn again bit for bit from its JSON on the same device and dtype. Initial
noise comes from a CPU generator seeded per image (as train/samples.py does): the same seed
starts from the same latents on any device.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import importlib.util
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import diffusers
import torch
from PIL import Image

from faceset import __version__
from faceset.generate.config import Sampler
from faceset.generate.lora_file import Family, LoraFile
from faceset.redaction import redact
from faceset.train import families
from faceset.train.adapters import load_lora_file
from faceset.train.base_model import load_base
from faceset.train.errors import OutOfMemory
from faceset.train.families.base import to_device

log = logging.getLogger(__name__)

ADAPTER = "faceset"
"""The name the LoRA is loaded under (diffusers/peft adapters are named)."""
DEFAULT_GUIDANCE: dict[str, float] = {i.name: i.guidance for i in families.CATALOG}
"""Each family's own guidance (real CFG, true CFG or FLUX.1's embedded guidance)."""
DEFAULT_SIZE: dict[str, int] = {i.name: i.resolution for i in families.CATALOG}
IMG2IMG: dict[str, str] = {
    "sd15": "StableDiffusionImg2ImgPipeline",
    "sdxl": "StableDiffusionXLImg2ImgPipeline",
    # diffusers 0.42 has no klein img2img; its inpaint pipeline with an all-white mask is one
    # (every latent is noised to the strength and redrawn).
    "flux2-klein": "Flux2KleinInpaintPipeline",
    "zimage": "ZImageImg2ImgPipeline",
    "zimage-turbo": "ZImageImg2ImgPipeline",
    "qwen-image": "QwenImageImg2ImgPipeline",
    "flux1": "FluxImg2ImgPipeline",
}
"""Each family's image-to-image pipeline: it shares the loaded components (``from_pipe``)."""
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass(frozen=True, slots=True)
class Request:
    """One image: everything that decides it besides the base model, LoRA and scheduler."""

    prompt: str
    negative_prompt: str
    seed: int
    steps: int
    guidance: float
    width: int
    height: int
    sampler: Sampler
    lora_weight: float


def scheduler_for(sampler: Sampler, base_config: Mapping[str, Any]) -> Any:
    """Return a fresh diffusers scheduler for ``sampler`` from the base model's scheduler config.

    The A1111 names map as diffusers documents them: DPM++ 2M Karras is
    ``DPMSolverMultistepScheduler`` with ``algorithm_type="dpmsolver++"`` and Karras sigmas.
    """
    config = dict(base_config)
    if sampler == "dpmpp_2m_karras":
        return diffusers.DPMSolverMultistepScheduler.from_config(
            config, algorithm_type="dpmsolver++", use_karras_sigmas=True
        )
    if sampler == "euler_a":
        return diffusers.EulerAncestralDiscreteScheduler.from_config(config)
    if sampler == "euler":
        return diffusers.EulerDiscreteScheduler.from_config(config)
    if sampler == "ddim":
        return diffusers.DDIMScheduler.from_config(config)
    return getattr(diffusers, str(config["_class_name"])).from_config(config)


def sampler_for_family(family: str, sampler: Sampler) -> Sampler:
    """Return the sampler to draw ``family`` with: the A1111 samplers are SD's; the
    flow-matching transformers always use their own scheduler (``model``)."""
    return sampler if family in families.SD_FAMILIES else "model"


def pick_device(device: str | None = None, dtype: str | None = None) -> tuple[str, str]:
    """Return (device, dtype name): the GPU in bf16 (else fp16) when there is one, else the CPU
    in float32, unless asked for."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if dtype is None:
        if device.startswith("cuda"):
            dtype = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
        else:
            dtype = "float32"  # CPUs are slow and inexact in half precision
    if dtype not in _DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}")
    return device, dtype


class Engine:
    """A base model ready to draw, carrying at most one LoRA at a time."""

    def __init__(
        self,
        base: str,
        family: Family,
        *,
        device: str | None = None,
        dtype: str | None = None,
        scheduler_config: Mapping[str, Any] | None = None,
        text_encoder: Sequence[str | Path] = (),
        vae: str | Path | None = None,
        vram: str | None = None,
        quantize: str | None = None,
    ) -> None:
        """Load ``base`` (folder, ``.safetensors`` or model id) of ``family`` onto ``device``.

        ``scheduler_config`` replaces the base model's own (to redraw a recorded image exactly).
        ``text_encoder``/``vae``: the files a diffusion-model file needs (transformer families).
        ``vram`` (GiB, or auto) holds a transformer family as training's memory plan says for
        that budget (``train/memory.py``), ``quantize`` fixes that plan's choice of weights.
        Raises BaseModelError when the base cannot be loaded or is not of ``family``.
        """
        self.base = base
        self.family = family
        self.text_encoder = [str(p) for p in text_encoder]
        self.vae = str(vae) if vae is not None else None
        self.device, self.dtype = pick_device(device, dtype)
        self.flow = None if family in families.SD_FAMILIES else families.flow_family(family)
        self.text_device = self.device
        self.memory: Any = None
        if self.flow is not None:
            from faceset.train.flow import load_pipeline

            self.pipeline = load_pipeline(base, self.flow, torch.float32, text_encoder, vae)
        else:
            self.pipeline = load_base(base, family).pipeline
        if self.flow is not None and (vram is not None or quantize is not None):
            self._hold(vram, quantize)
        elif self.dtype == "float32":
            self.pipeline.to(self.device)  # load_base loads float32: no cast, no cast warnings
        else:
            self.pipeline.to(self.device, _DTYPES[self.dtype])
        self.pipeline.set_progress_bar_config(disable=True)
        self.scheduler_config: dict[str, Any] = dict(
            scheduler_config if scheduler_config is not None else self.pipeline.scheduler.config
        )
        self.lora: LoraFile | None = None
        self._weight: float | None = None
        self._img2img: Any = None
        log.info("drawing on %s in %s", self.device, self.dtype)

    def _hold(self, vram: str | None, quantize: str | None) -> None:
        """Place a transformer family's components as the memory plan says for ``vram``."""
        from faceset.train import memory, quantization
        from faceset.train.flow import model_size

        assert self.flow is not None
        pipe, device, dtype = self.pipeline, torch.device(self.device), _DTYPES[self.dtype]
        cuda = device.type == "cuda"
        free = torch.cuda.mem_get_info(device)[0] / memory.GIB if cuda else None
        held = memory.plan(
            model_size(pipe, self.flow),
            memory.budget(vram, free) if vram else None,  # type: ignore[arg-type]
            resolution=self.flow.info.resolution,
            rank=1,
            cuda=cuda,
            bitsandbytes=importlib.util.find_spec("bitsandbytes") is not None,
            # Drawing keeps no activations for a backward pass: checkpointing's estimate is close.
            overrides=memory.Overrides(quantize=quantize, gradient_checkpointing=True),  # type: ignore[arg-type]
        )
        if held.quantize == "fp8":
            # Layerwise fp8 casting must come after the LoRA layers exist (they would be made in
            # fp8 too), and a drawing engine swaps LoRAs: int8 holds the same bytes per weight.
            held = dataclasses.replace(held, quantize="int8")
        quantization.check_available(held, cuda)
        pipe.vae.to(device, dtype)
        if held.quantize == "nf4":
            pipe.transformer = quantization.nf4_transformer(self.base, pipe.transformer)
        else:
            pipe.transformer.to(dtype)
        if held.quantize == "int8":
            quantization.int8_weights(pipe.transformer)
        if held.offload == "block":
            quantization.block_offload(pipe.transformer, device)
        else:
            pipe.transformer.to(device)
        for name in self.flow.text_encoders:
            encoder = getattr(pipe, name).to(dtype)
            if held.text_encoder == "int8":
                quantization.int8_weights(encoder)
            if held.text_encoder != "cpu":
                encoder.to(device)
        self.text_device = "cpu" if held.text_encoder == "cpu" else self.device
        self.memory = held
        log.info("memory: %s", held.describe())

    def use_lora(self, lora: LoraFile | None) -> None:
        """Put ``lora`` on the base model in place of the current one; None: the base alone."""
        if self.lora is not None and lora is not None and self.lora.sha256 == lora.sha256:
            return
        if self.lora is not None:
            self.pipeline.delete_adapters(ADAPTER)
            self.lora, self._weight = None, None
        if lora is not None:
            load_lora_file(self.pipeline, lora.path, ADAPTER)
            self.lora = lora

    def render(
        self, request: Request, scheduler_config: Mapping[str, Any] | None = None
    ) -> Image.Image:
        """Return the RGB image ``request`` describes, drawn with the current LoRA.

        ``scheduler_config`` (a record's) replaces the base model's scheduler config.
        """
        return self._draw(self.pipeline, request, scheduler_config, {})

    def _draw(
        self,
        pipe: Any,
        request: Request,
        scheduler_config: Mapping[str, Any] | None,
        extra: Mapping[str, Any],
    ) -> Image.Image:
        """:meth:`render`'s drawing, with ``extra`` pipeline keywords, on ``pipe``."""
        if self.lora is not None and self._weight != request.lora_weight:
            # The adapters live on the shared denoiser: this weights the img2img pipeline too.
            self.pipeline.set_adapters([ADAPTER], adapter_weights=[request.lora_weight])
            self._weight = request.lora_weight
        config = self.scheduler_config if scheduler_config is None else scheduler_config
        pipe.scheduler = scheduler_for(request.sampler, config)
        generator = torch.Generator("cpu").manual_seed(request.seed)
        try:
            with torch.inference_mode():
                if self.flow is None:
                    inputs: dict[str, Any] = {
                        "prompt": request.prompt,
                        "negative_prompt": request.negative_prompt or None,
                        "guidance_scale": request.guidance,
                    }
                else:  # the family's text inputs and its own guidance argument
                    inputs = self.flow.draw_inputs(
                        self.pipeline, request.prompt, request.negative_prompt, request.guidance,
                        torch.device(self.text_device),
                    )  # fmt: skip
                    inputs = to_device(inputs, torch.device(self.device))
                result = pipe(
                    **inputs,
                    **extra,
                    height=request.height,
                    width=request.width,
                    num_inference_steps=request.steps,
                    generator=generator,
                )
        except torch.OutOfMemoryError as e:
            raise OutOfMemory(
                f"out of GPU memory drawing {request.width}x{request.height} images;"
                " lower --width/--height"
            ) from e
        image: Image.Image = result.images[0]
        return image.convert("RGB")

    def img2img(
        self,
        request: Request,
        image: Image.Image,
        strength: float,
        scheduler_config: Mapping[str, Any] | None = None,
    ) -> Image.Image:
        """Return ``image`` redrawn by ``request`` (its size: ``request.width`` x ``height``) at
        denoising ``strength`` (0: unchanged, 1: drawn anew), with the current LoRA.

        The family's image-to-image pipeline shares this engine's components, so nothing loads
        again; noise comes from a CPU generator seeded with ``request.seed``, as in :meth:`render`.
        """
        if image.size != (request.width, request.height):
            raise ValueError(f"image is {image.size}, request {request.width}x{request.height}")
        if self._img2img is None:
            self._img2img = getattr(diffusers, IMG2IMG[self.family]).from_pipe(self.pipeline)
            self._img2img.set_progress_bar_config(disable=True)
        extra: dict[str, Any] = {"image": image.convert("RGB"), "strength": strength}
        if self.family == "flux2-klein":
            extra["mask_image"] = Image.new("L", image.size, 255)
        return self._draw(self._img2img, request, scheduler_config, extra)

    def record(self, request: Request) -> dict[str, Any]:
        """Return the JSON-ready record that lets :func:`redraw` make the same image again."""
        lora = self.lora
        record: dict[str, Any] = redact(
            {
                **asdict(request),
                "scheduler": {
                    "class": type(scheduler_for(request.sampler, self.scheduler_config)).__name__,
                    "base_config": _json_safe(self.scheduler_config),
                },
                "lora": None
                if lora is None
                else {
                    "path": str(lora.path.resolve()),
                    "sha256": lora.sha256,
                    "name": lora.name,
                    "step": lora.step,
                    "subject": lora.subject,
                },
                "base": self.base,
                **({"text_encoder": self.text_encoder} if self.text_encoder else {}),
                **({"vae": self.vae} if self.vae else {}),
                "family": self.family,
                "device": self.device,
                "dtype": self.dtype,
                "generator": "torch.Generator('cpu').manual_seed(seed), initial latents drawn on CPU",
                "versions": _versions(),
            }
        )
        return record


def request_of(record: Mapping[str, Any]) -> Request:
    """Return the :class:`Request` stored in an image record."""
    names = Request.__dataclass_fields__
    return Request(**{name: record[name] for name in names})


def _json_safe(config: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``config`` with tuples as lists, as JSON stores them, so a reload compares equal."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        out[key] = list(value) if isinstance(value, tuple) else value
    return out


def _versions() -> dict[str, str]:
    found = {"faceset": __version__}
    for name in ("torch", "diffusers", "transformers", "peft"):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found
