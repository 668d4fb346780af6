"""What every LLM-based component needs, whatever service it runs in.

- `client`: one OpenAI-compatible model asked for one pydantic schema through
  LangChain, with the answer, the token usage and every HTTP attempt the client
  retried, and typed failures instead of exceptions;
- `pricing`: what a call costs, from a price table per model;
- `budget`: the daily token and cost budget, checked before every call, that
  concurrent calls cannot overshoot;
- `store`: the tables the calls, discussions and reflections are kept in.
"""
