"""Renderings: a Plan as text, Markdown and JSON, and the Markdown bodies posted to GitHub (pure)."""
