"""Select stage: which of a person's faces make the training set."""
