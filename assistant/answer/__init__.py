"""Answers from retrieved passages: extractive (default, offline) or from an OpenAI-compatible LLM."""
