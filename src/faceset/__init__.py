"""faceset: the faces your photo library already named, as a training set of one person.

The library API, used by the CLI and usable from Python::

    from faceset import config, pipeline

    cfg = config.load(overrides={"library": {"db": "sqlite:///storage/index.db",
                                             "originals": "originals"},
                                 "export": {"out": "jane"}})
    result = pipeline.export(cfg, "Jane Doe")
"""

__version__ = "0.1.0"
