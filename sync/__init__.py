"""LangSmith runs in, Label Studio tasks out, reviewed tasks out as fine-tune data."""
