"""Recipe 8: agents that search the bundled docs with a tool, in LangChain and in LlamaIndex, on a 4-bit 135M model.

Both frameworks' own agents drive SmolLM2-135M-Instruct (NF4) over lorag's hybrid retriever (BM25 + MiniLM):

- LangChain: ``langchain.agents.create_agent`` (langchain v1) with ``ChatLorag`` and a retriever tool made by
  langchain-core's ``create_retriever_tool`` over ``LoragHybridRetriever`` (``response_format="content_and_artifact"``:
  the model reads the passages, the ``ToolMessage`` keeps the retrieved Documents as its artifact). The agent is a
  LangGraph graph (a model node, LangGraph's ``ToolNode``, the loop between them); nothing of the loop is written here.
  Why ``create_agent`` and not ``langgraph.prebuilt.create_react_agent``: langgraph 1.x deprecates the latter in favour
  of the former, and ``create_agent``'s middleware can set ``tool_choice`` per model call (below), which the prebuilt
  ReAct agent cannot without binding the tools to the model ourselves. ``lorag[langchain]`` installs ``langchain``
  (and with it ``langgraph``).
- LlamaIndex: ``FunctionAgent`` (``llama_index.core.agent.workflow``) with ``LoragLLM``, a ``FunctionCallingLLM``, and
  a ``FunctionTool`` over the same retriever.

What is forced, and why: a 135M model given ``tool_choice="auto"`` mostly answers in prose without calling the tool,
so both agents force the first model call to call ``search_docs``: in LangChain a ``wrap_model_call`` middleware
sets ``tool_choice="search_docs"`` while the conversation has no tool result yet, ``"auto"`` after the first result and
``"none"`` (answer now) after ``MAX_SEARCHES`` results; in LlamaIndex ``FunctionAgent(initial_tool_choice=...)``. A
forced call is grammar-constrained (lorag's ``structured`` extra), so its arguments always parse and validate against
the tool's schema. Everything else (running the tool, feeding its result back, stopping when the model answers) is
the frameworks' own agent machinery. What the model writes as the query (often a made-up URL, whatever the argument's
description says) and the answer it draws from the passages are a 135M model's: the recipe shows the agents working
end to end, and a larger instruct model behind the same code gives better queries and answers.

    python cookbook/08_agents.py                 # all bundled docs, three questions
    python cookbook/08_agents.py --size smoke    # three docs, one question, short answers (CI)
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

from langchain.agents import create_agent
from langchain.agents.middleware import AgentMiddleware, ModelRequest, ModelResponse, wrap_model_call
from langchain_core.documents import Document
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.prompts import PromptTemplate
from langchain_core.tools import BaseTool, create_retriever_tool
from pydantic import BaseModel, Field

from _common import DOCS, parser, write_results
from langchain_lorag import ChatLorag, LoragHybridRetriever, LoragTextSplitter
from lorag.embedding import Embedder

QUESTIONS = [
    "How do I allow cross-origin requests from my frontend?",
    "How do I run code after returning a response?",
    "How do I serve static files?",
]
TOOL_NAME = "search_docs"
TOOL_DESCRIPTION = "Search the FastAPI documentation for passages about a topic."
#: How each retrieved passage is shown to the model, in both frameworks.
PASSAGE = "Source: {source}\n{page_content}"
#: Tool results after which the LangChain agent must answer (``tool_choice="none"``).
MAX_SEARCHES = 2


class SearchQuery(BaseModel):
    """The tool's arguments, with a description each framework puts in the schema the model reads."""

    query: str = Field(description="the key words of the question")


def tool_choice_per_turn(tool_name: str, max_searches: int) -> AgentMiddleware:
    """``create_agent`` middleware: the first model call must call ``tool_name``; the model chooses after that, until
    ``max_searches`` tool results are in and it must answer."""

    @wrap_model_call(name="ToolChoicePerTurn")
    def choose(request: ModelRequest, handler: Callable[[ModelRequest], ModelResponse]) -> ModelResponse:
        searches = sum(isinstance(m, ToolMessage) for m in request.messages)
        choice = tool_name if searches == 0 else "auto" if searches < max_searches else "none"
        return handler(request.override(tool_choice=choice))

    return choose


def langchain_agent(llm: ChatLorag, search: BaseTool) -> Any:
    """langchain v1's agent (a compiled LangGraph graph) over one retriever tool."""
    return create_agent(llm, [search], middleware=[tool_choice_per_turn(search.name, MAX_SEARCHES)])


async def llamaindex_agent(llm: Any, retriever: LoragHybridRetriever, question: str) -> Any:
    from llama_index.core.agent.workflow import FunctionAgent
    from llama_index.core.tools import FunctionTool

    def search_docs(query: str) -> str:
        return "\n\n".join(
            PASSAGE.format(source=d.metadata["source"], page_content=d.page_content) for d in retriever.invoke(query)
        )

    search = FunctionTool.from_defaults(
        fn=search_docs, name=TOOL_NAME, description=TOOL_DESCRIPTION, fn_schema=SearchQuery
    )
    agent = FunctionAgent(tools=[search], llm=llm, initial_tool_choice=TOOL_NAME)
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
    max_tokens = 96 if smoke else 160  # room for a call: its query may run to a few dozen tokens
    questions = QUESTIONS[:1] if smoke else QUESTIONS

    search = create_retriever_tool(
        retriever,
        TOOL_NAME,
        TOOL_DESCRIPTION,
        document_prompt=PromptTemplate.from_template(PASSAGE),
        response_format="content_and_artifact",
    )
    llm = ChatLorag(model="smollm2-135m-instruct", quantization="nf4", max_tokens=max_tokens)
    agent = langchain_agent(llm, search)
    graph = {  # what create_agent built: a LangGraph graph whose tool node is LangGraph's prebuilt ToolNode
        "type": f"{type(agent).__module__}.{type(agent).__name__}",
        "nodes": sorted(agent.get_graph().nodes),
        "tool_node": f"{type(agent.nodes['tools'].bound).__module__}.{type(agent.nodes['tools'].bound).__name__}",
    }
    runs: list[dict[str, Any]] = []
    for question in questions:
        messages: list[BaseMessage] = agent.invoke({"messages": [HumanMessage(question)]})["messages"]
        calls = [c for m in messages if isinstance(m, AIMessage) for c in m.tool_calls]
        results = [m for m in messages if isinstance(m, ToolMessage)]
        print(f"\nQ: {question}\n  LangChain calls: {[(c['name'], c['args']) for c in calls]}")
        print(f"  A: {messages[-1].content}")
        runs.append(
            {
                "framework": "langchain",
                "agent": "langchain.agents.create_agent",
                "graph": graph,
                "question": question,
                "model_turns": sum(isinstance(m, AIMessage) for m in messages),
                "calls": [{"name": c["name"], "args": c["args"], "id": c["id"]} for c in calls],
                "tool_message_ids": [m.tool_call_id for m in results],
                "tool_statuses": [m.status for m in results],
                "sources": [d.metadata["source"] for m in results for d in (m.artifact or [])],
                "sources_in_content": [s for m in results for s in sources(str(m.content))],
                "answer": str(messages[-1].content),
                "last_has_calls": bool(getattr(messages[-1], "tool_calls", None)),
            }
        )

    from llama_index.llms.lorag import LoragLLM

    li_llm = LoragLLM(model="smollm2-135m-instruct", quantization="nf4", max_tokens=max_tokens)
    for question in questions:
        response = asyncio.run(llamaindex_agent(li_llm, retriever, question))
        print(f"\nQ: {question}\n  LlamaIndex calls: {[(c.tool_name, c.tool_kwargs) for c in response.tool_calls]}")
        print(f"  A: {response.response.content}")
        runs.append(
            {
                "framework": "llamaindex",
                "agent": "llama_index.core.agent.workflow.FunctionAgent",
                "question": question,
                "calls": [{"name": c.tool_name, "args": c.tool_kwargs} for c in response.tool_calls],
                "sources": [s for c in response.tool_calls for s in sources(str(c.tool_output.content))],
                "answer": str(response.response.content or ""),
            }
        )
    write_results(args.out, {"documents": len(docs), "chunks": len(chunks), "runs": runs})


if __name__ == "__main__":
    main()
