"""The HTTP APIs over an Assistant: REST with OpenAPI, OpenAI-compatible chat completions (app.py), and an
MCP server (mcp.py). Imported only by the commands that serve them."""
