"""The news analyzer trigger (`ats trigger news`): news feeds in, LLM verdicts out as signals.

- `feeds`: fetch RSS, Atom, JSON Feed and plain JSON lists (URLs or local files) and
  parse them into articles with stable ids;
- `state`: the ids of articles already handled, kept in a small file across restarts;
- `analyst`: ask an OpenAI-compatible model, through LangChain, for a structured verdict;
- `runner`: the poll loop that ties them to the gateway;
- `cli`: the `news` subcommand.
"""
