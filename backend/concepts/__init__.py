"""Concepts: classifiers over sentence embeddings, defined by positive and negative examples."""
