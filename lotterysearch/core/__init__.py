"""The nouns every stage shares: datasets, models, the ``Mask`` type, isomorphism classes and overlap."""
