"""Deterministic workflow code: the AgentRun loop and what it is made of. Imports contracts only;
activities are called by name."""
