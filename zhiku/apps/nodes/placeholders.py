"""Kinds that do nothing at run time: canvas and editor helpers kept in exported graphs."""

from __future__ import annotations

from zhiku.apps.workflow.node import NodeSpec

SPECS = (NodeSpec(kind="emptyNode", description="placeholder"),
         NodeSpec(kind="pluginConfig", description="plugin settings holder"),
         NodeSpec(kind="globalVariable", description="editor pseudo-node for variables"),
         NodeSpec(kind="comment", description="canvas note"))
