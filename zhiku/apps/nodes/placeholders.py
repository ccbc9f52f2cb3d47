"""Kinds that do nothing at run time: canvas and editor helpers kept in exported graphs."""

from __future__ import annotations

from zhiku.apps.workflow.node import NodeSpec

SPECS = (NodeSpec(kind="emptyNode", inline=True, description="placeholder"),
         NodeSpec(kind="pluginConfig", inline=True, description="plugin settings holder"),
         NodeSpec(kind="globalVariable", inline=True, description="editor pseudo-node for variables"),
         NodeSpec(kind="comment", inline=True, description="canvas note"))
