"""tuneforge: self-hosted fine-tuning for open-weight language models behind the OpenAI API."""

__version__ = "0.1.0"
