"""Sample datasets that ship with tuneforge, generated from a seed (the quickstart and examples use them)."""
