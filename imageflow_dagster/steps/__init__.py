"""Workflow step kinds: one module per kind (ai_generation, webhook, handoff), each keeping the contract in
base.py; kinds.py recognises a step's kind as the seed does, runner.py runs a job's steps in dependency order."""
