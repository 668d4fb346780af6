"""Local stand-ins for the outside world (LLM providers, web servers), speaking their
real protocols on 127.0.0.1 so the code under test runs through its real clients."""
