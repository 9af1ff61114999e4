"""Export stage: the output folder, its manifest and its report."""
