"""The LLM trading group: a team of language-model agents that discusses each signal.

`config` (the team and its settings), `schemas` (what each member answers),
`prompts`, `calls` (budgeted, recorded calls), `team` (one discussion), `memory`
(reflections), `group` (the process's handlers). Run it with `ats group llm`.
"""
