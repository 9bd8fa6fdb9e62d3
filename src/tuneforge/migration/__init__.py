"""`tuneforge migrate`: carry an organisation's fine-tuning (files, jobs, legacy fine-tunes) from any
OpenAI-compatible server to tuneforge, retrain there, and compare the new models' answers with the old."""
