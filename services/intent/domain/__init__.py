"""Intent detection as plain Python: vocabularies, slots, the classifier, clarification."""
