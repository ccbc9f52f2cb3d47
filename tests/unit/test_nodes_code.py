"""The code node's sandboxes, for real: V8 without I/O, Python in a limited process; runaway code ends
as a clear error within its limits."""

from __future__ import annotations

import pytest

from zhiku.apps.nodes._sandbox import SandboxError, SandboxLimits, run_js, run_python
from zhiku.apps.nodes.code import check, outputs_of
from zhiku.apps.workflow.graph import Workflow, parse_node

TIGHT = SandboxLimits(timeout_s=1, memory_bytes=128 * 1024 * 1024)


async def test_js_main_gets_the_inputs_and_its_object_comes_back() -> None:
    code = "function main({data1, data2}) { console.log('got', data1, {n: data2}); return {sum: data1 + data2, list: [1]} }"
    result = await run_js(code, {"data1": 2, "data2": 3}, TIGHT)
    assert result.value == {"sum": 5, "list": [1]} and result.log == 'got 2 {"n":3}'
    result = await run_js("async function main({a}) { return {a: await Promise.resolve(a + '!')} }", {"a": "x"}, TIGHT)
    assert result.value == {"a": "x!"}


@pytest.mark.parametrize("expression", ["require('fs')", "fetch('http://127.0.0.1/')", "process.env",
                                        "XMLHttpRequest", "Deno.readFile"])
async def test_js_has_no_io(expression: str) -> None:
    with pytest.raises(SandboxError) as caught:
        await run_js(f"function main() {{ return {{x: {expression}}} }}", {}, TIGHT)
    assert caught.value.code == "code_failed" and "is not defined" in caught.value.message


@pytest.mark.parametrize(("code", "error"), [
    ("function main() { while (true) {} }", "code_timeout"),
    ("while (true) {}", "code_timeout"),
    ("async function main() { await new Promise(() => {}); }", "code_timeout"),
    ("function main() { const a = []; while (true) a.push(new Array(1e6).fill(1)); }", "code_memory_limit"),
    ("function main() { throw new Error('boom') }", "code_failed"),
    ("function main( {", "code_failed"),
    ("const x = 1;", "code_failed")])
async def test_js_runaway_and_broken_code_are_clear_errors(code: str, error: str) -> None:
    with pytest.raises(SandboxError) as caught:
        await run_js(code, {}, TIGHT)
    assert caught.value.code == error, caught.value.message


async def test_python_main_gets_its_keyword_inputs_and_prints_are_the_log() -> None:
    code = "def main(data1, data2):\n    print('sum of', data1, data2)\n    return {'sum': data1 + data2}\n"
    result = await run_python(code, {"data1": 2, "data2": 3, "unused": 1}, TIGHT)
    assert result.value == {"sum": 5} and result.log == "sum of 2 3\n"
    result = await run_python("import os\ndef main(**kw):\n    return {'env': dict(os.environ), 'cwd': os.listdir('.'), **kw}",
                              {"a": 1}, TIGHT)
    # nothing of the server's environment (Python itself sets LC_CTYPE when the locale is C, PEP 538)
    assert set(result.value["env"]) <= {"LC_CTYPE"} and result.value["cwd"] == [] and result.value["a"] == 1


@pytest.mark.parametrize(("code", "error", "words"), [
    ("def main():\n    while True:\n        pass\n", "code_timeout", "CPU"),
    ("def main():\n    x = bytearray(1024 ** 3)\n", "code_memory_limit", "memory"),
    ("def main():\n    import socket\n    socket.create_connection(('127.0.0.1', 80))\n", "code_failed", "socket"),
    ("def main():\n    open('x.txt', 'w').write('x')\n", "code_failed", "writing files"),
    ("def main():\n    import subprocess\n    subprocess.run(['true'])\n", "code_failed", "subprocess"),
    ("def main():\n    import os\n    os.system('true')\n", "code_failed", "os.system"),
    ("def main():\n    raise ValueError('bad value')\n", "code_failed", "ValueError: bad value"),
    ("x = 1\n", "code_failed", "no function main")])
async def test_python_runaway_and_forbidden_code_are_clear_errors(code: str, error: str, words: str) -> None:
    with pytest.raises(SandboxError) as caught:
        await run_python(code, {}, TIGHT)
    assert caught.value.code == error and words in caught.value.message, caught.value.message


async def test_python_sleeping_past_the_wall_clock_is_killed() -> None:
    with pytest.raises(SandboxError) as caught:
        await run_python("import time\ndef main():\n    time.sleep(60)\n", {}, TIGHT)
    assert caught.value.code == "code_timeout"


async def test_huge_output_is_refused() -> None:
    with pytest.raises(SandboxError) as caught:
        await run_python("def main():\n    return {'x': 'y' * 3_000_000}\n", {}, TIGHT)
    assert caught.value.code == "code_output_too_large"


def test_outputs_are_filled_by_key_and_checks_name_problems() -> None:
    node = parse_node({"nodeId": "c", "flowNodeType": "code", "inputs": [{"key": "codeType", "value": "ruby"}],
                       "outputs": [{"id": "system_rawResponse", "key": "system_rawResponse"},
                                   {"id": "x1", "key": "total"}, {"id": "x2", "key": "missing"}]}, 0)
    assert outputs_of(node, {"total": 3, "other": 1}) == {"system_rawResponse": {"total": 3, "other": 1}, "total": 3}
    assert outputs_of(node, [1]) == {"system_rawResponse": [1]}
    assert check(node, Workflow(nodes=(node,), edges=())) == ["unknown code language 'ruby' (js or py)",
                                                             "it has no code"]
