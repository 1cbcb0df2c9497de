"""Recipe 8: an agent that searches the bundled docs with a tool, in LangChain and in LlamaIndex, on a 4-bit 135M model.

One Python function searches lorag's hybrid retriever (BM25 + MiniLM) and returns the best passages with their files.
Both frameworks drive SmolLM2-135M-Instruct (NF4) through the same tool loop:

- LangChain: ``ChatLorag.bind_tools`` with langchain-core's ``@tool``, and the loop written out in messages
  (``AIMessage.tool_calls`` -> ``tool.invoke(call)`` -> ``ToolMessage`` -> the model again), which is all an agent
  framework does; ``langchain`` / ``langgraph`` are not needed for it;
- LlamaIndex: ``FunctionAgent`` (``llama_index.core.agent.workflow``) with ``LoragLLM``, a ``FunctionCallingLLM``.

A 135M model given ``tool_choice="auto"`` mostly answers in prose without calling, so both force the first call
(``tool_choice`` the tool's name; ``FunctionAgent(initial_tool_choice=...)``): the call is grammar-constrained, so its
arguments always parse and validate against the tool's schema. Later turns are the model's choice, and the last
one is an answer (``tool_choice="none"``). What the model writes as the query (often a made-up URL, whatever the
argument's description says) and the answer it draws from the passages are a 135M model's: the recipe shows the
loop working end to end, and a larger instruct model behind the same code gives better queries and answers.

    python cookbook/08_agents.py                 # all bundled docs, three questions
    python cookbook/08_agents.py --size smoke    # three docs, one question, short answers (CI)
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from langchain_core.documents import Document
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.tools import BaseTool, tool
from pydantic import BaseModel, Field

from _common import DOCS, parser, write_results
from langchain_lorag import ChatLorag, LoragHybridRetriever, LoragTextSplitter
from lorag.embedding import Embedder

QUESTIONS = [
    "How do I allow cross-origin requests from my frontend?",
    "How do I run code after returning a response?",
    "How do I serve static files?",
]
#: Characters of each passage handed back to the model: enough to answer from, short enough to prefill fast on CPU.
PASSAGE_CHARS = 500


class SearchQuery(BaseModel):
    """The tool's arguments, with a description each framework puts in the schema the model reads."""

    query: str = Field(description="the key words of the question")


def make_search(retriever: LoragHybridRetriever) -> Any:
    def search_docs(query: str) -> str:
        """Search the FastAPI documentation for passages about a topic."""
        hits = retriever.invoke(query)
        return "\n\n".join(f"Source: {d.metadata['source']}\n{d.page_content[:PASSAGE_CHARS]}" for d in hits)

    return search_docs


def langchain_agent(llm: ChatLorag, tools: list[BaseTool], question: str, max_steps: int = 3) -> list[BaseMessage]:
    """The tool loop in langchain-core messages: the first call forced, then the model's choice, then an answer."""
    by_name = {t.name: t for t in tools}
    messages: list[BaseMessage] = [HumanMessage(question)]
    for step in range(max_steps):
        choice = tools[0].name if step == 0 else "auto" if step < max_steps - 1 else "none"
        reply = llm.bind_tools(tools, tool_choice=choice).invoke(messages)
        messages.append(reply)
        if not isinstance(reply, AIMessage) or not reply.tool_calls:
            break
        for call in reply.tool_calls:
            messages.append(by_name[call["name"]].invoke(call))  # a ToolMessage carrying the call's id
    return messages


async def llamaindex_agent(llm: Any, search_docs: Any, question: str) -> Any:
    from llama_index.core.agent.workflow import FunctionAgent
    from llama_index.core.tools import FunctionTool

    search = FunctionTool.from_defaults(fn=search_docs, description=search_docs.__doc__, fn_schema=SearchQuery)
    agent = FunctionAgent(tools=[search], llm=llm, initial_tool_choice="search_docs")
    return await agent.run(question, max_iterations=4)


def sources(tool_output: str) -> list[str]:
    return re.findall(r"^Source: (.+)$", tool_output, flags=re.MULTILINE)


def main() -> None:
    args = parser(__doc__.splitlines()[0], "08_agents").parse_args()
    smoke = args.size == "smoke"
    paths = sorted(DOCS.rglob("*.md"))
    if smoke:
        paths = [p for p in paths if p.name in {"cors.md", "background-tasks.md", "static-files.md"}]
    docs = [Document(p.read_text(encoding="utf-8"), metadata={"source": str(p.relative_to(DOCS))}) for p in paths]
    chunks = LoragTextSplitter(method="markdown", chunk_size=256, tokenizer="minilm").split_documents(docs)
    retriever = LoragHybridRetriever.from_documents(chunks, Embedder("minilm"), k=2)
    search_docs = make_search(retriever)
    max_tokens = 96 if smoke else 160  # room for a call: its query may run to a few dozen tokens

    llm = ChatLorag(model="smollm2-135m-instruct", quantization="nf4", max_tokens=max_tokens)
    runs: list[dict[str, Any]] = []
    for question in QUESTIONS[:1] if smoke else QUESTIONS:
        messages = langchain_agent(llm, [tool(search_docs, args_schema=SearchQuery)], question)
        calls = [c for m in messages if isinstance(m, AIMessage) for c in m.tool_calls]
        results = [m for m in messages if isinstance(m, ToolMessage)]
        print(f"\nQ: {question}\n  LangChain calls: {[(c['name'], c['args']) for c in calls]}")
        print(f"  A: {messages[-1].content}")
        runs.append(
            {
                "framework": "langchain",
                "question": question,
                "calls": [{"name": c["name"], "args": c["args"], "id": c["id"]} for c in calls],
                "tool_message_ids": [m.tool_call_id for m in results],
                "sources": [s for m in results for s in sources(str(m.content))],
                "answer": str(messages[-1].content),
                "last_has_calls": bool(getattr(messages[-1], "tool_calls", None)),
            }
        )

    from llama_index.llms.lorag import LoragLLM

    li_llm = LoragLLM(model="smollm2-135m-instruct", quantization="nf4", max_tokens=max_tokens)
    for question in QUESTIONS[:1] if smoke else QUESTIONS:
        response = asyncio.run(llamaindex_agent(li_llm, search_docs, question))
        print(f"\nQ: {question}\n  LlamaIndex calls: {[(c.tool_name, c.tool_kwargs) for c in response.tool_calls]}")
        print(f"  A: {response.response.content}")
        runs.append(
            {
                "framework": "llamaindex",
                "question": question,
                "calls": [{"name": c.tool_name, "args": c.tool_kwargs} for c in response.tool_calls],
                "sources": [s for c in response.tool_calls for s in sources(str(c.tool_output.content))],
                "answer": str(response.response.content or ""),
            }
        )
    write_results(args.out, {"documents": len(docs), "chunks": len(chunks), "runs": runs})


if __name__ == "__main__":
    main()
