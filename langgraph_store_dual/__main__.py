"""`python -m langgraph_store_dual`: the command-line tool."""

from .cli import main

if __name__ == "__main__":
    main()
