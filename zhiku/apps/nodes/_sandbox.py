"""The code node's two sandboxes: JavaScript in an embedded V8, Python in a separate limited process.

FastGPT's contract: ``function main({data1, data2}) { return {...} }`` / ``def main(data1, data2): return {...}``;
the returned object's keys fill the node's outputs. Both sandboxes take the inputs as JSON and give back
JSON, with what the code logged (``console.log`` / ``print``).

- **JavaScript** runs in a fresh V8 isolate (``mini-racer``) per run: no ``require``, no ``fetch``, no
  ``process``, no file system — V8 alone has no I/O. ``timeout_s`` stops a runaway script, ``memory_bytes``
  caps its heap; either ends the run with a :class:`SandboxError`, and the server goes on. An ``async``
  ``main`` is awaited within the same time.
- **Python** runs as ``sys.executable -I`` in an empty environment and an empty temporary directory, with
  ``RLIMIT_CPU`` (CPU seconds), ``RLIMIT_AS`` (address space), ``RLIMIT_FSIZE`` 0 (no file written) and a
  small ``RLIMIT_NOFILE`` set before any user code is read, an audit hook that refuses sockets,
  processes, ``ctypes`` and opening files for writing, a wall-clock timeout (the process is killed), and
  at most ``MAX_OUTPUT_BYTES`` of output read back.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from dataclasses import dataclass
from typing import Any

from py_mini_racer import JSEvalException, JSOOMException, JSPromise, JSPromiseError, MiniRacer

from zhiku.errors import ZhikuError

MAX_CODE_CHARS = 100_000
MAX_OUTPUT_BYTES = 1024 * 1024
MAX_LOG_CHARS = 10_000


class SandboxError(ZhikuError):
    status = 422
    code = "code_failed"


@dataclass(frozen=True)
class SandboxLimits:
    timeout_s: float = 10.0
    memory_bytes: int = 256 * 1024 * 1024


@dataclass(frozen=True)
class CodeResult:
    value: Any
    log: str


# ---- JavaScript ------------------------------------------------------------------------------------

_JS_PRELUDE = """
const __logs = [];
const console = {log: (...a) => { __logs.push(a.map(x => typeof x === 'string' ? x : JSON.stringify(x)).join(' ')); }};
console.info = console.warn = console.error = console.debug = console.log;
"""
_JS_CALL = """
(async () => {
  if (typeof main !== 'function') throw new Error('the code defines no function main');
  const value = await main(%s);
  return JSON.stringify({value: value === undefined ? null : value, log: __logs.join('\\n')});
})()
"""


async def run_js(code: str, inputs: dict[str, Any], limits: SandboxLimits = SandboxLimits()) -> CodeResult:
    _check_code(code)
    racer = MiniRacer()  # on the running event loop: V8 works on its own thread, the loop stays free
    racer.set_hard_memory_limit(limits.memory_bytes)
    try:
        async with asyncio.timeout(limits.timeout_s):
            await racer.eval_cancelable(_JS_PRELUDE)
            await racer.eval_cancelable(code)
            promise = await racer.eval_cancelable(_JS_CALL % json.dumps(inputs, ensure_ascii=False))
            text = await promise if isinstance(promise, JSPromise) else promise
    except TimeoutError:
        raise SandboxError(f"the JavaScript code ran longer than {limits.timeout_s:g} s and was stopped",
                           code="code_timeout") from None
    except JSOOMException:
        raise SandboxError(f"the JavaScript code used more than {limits.memory_bytes // 2**20} MiB of memory "
                           "and was stopped", code="code_memory_limit") from None
    except (JSEvalException, JSPromiseError) as exc:
        raise SandboxError(f"the JavaScript code failed: {_first_lines(str(exc))}") from None
    finally:
        racer.close()
    if not isinstance(text, str) or len(text) > MAX_OUTPUT_BYTES:
        raise SandboxError(f"the code returned more than {MAX_OUTPUT_BYTES} bytes", code="code_output_too_large")
    parsed = json.loads(text)
    return CodeResult(value=parsed["value"], log=parsed["log"][:MAX_LOG_CHARS])


# ---- Python ----------------------------------------------------------------------------------------

# Runs in the child. The limits come first, from argv; then the code arrives on stdin.
_PY_RUNNER = r"""
import resource, sys
cpu, memory = int(sys.argv[1]), int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
import inspect, io, json, os, traceback
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_out = sys.stdout
request = json.loads(sys.stdin.read())
_BLOCKED = ("socket.", "subprocess.", "os.system", "os.exec", "os.fork", "os.posix_spawn", "os.spawn", "os.kill",
            "ctypes.", "os.remove", "os.rename", "os.rmdir", "os.mkdir", "shutil.", "os.chmod", "os.chown",
            "os.link", "os.symlink", "os.truncate", "os.putenv", "os.unsetenv", "sys.remote_exec", "pty.")
def _hook(event, args):
    if event.startswith(_BLOCKED):
        raise PermissionError(f"the Python sandbox does not allow {event}")
    if event == "open" and ((isinstance(args[1], str) and any(c in args[1] for c in "wax+"))
                            or (isinstance(args[2], int) and args[2] & _WRITE_FLAGS)):
        raise PermissionError("the Python sandbox does not allow writing files")
sys.addaudithook(_hook)
log = io.StringIO()
sys.stdout = sys.stderr = log
try:
    scope = {"__name__": "__sandbox__"}
    exec(compile(request["code"], "<code>", "exec"), scope)
    main = scope.get("main")
    if not callable(main):
        raise NameError("the code defines no function main")
    inputs = request["inputs"]
    params = inspect.signature(main).parameters.values()
    if not any(p.kind == p.VAR_KEYWORD for p in params):
        names = {p.name for p in params}
        inputs = {k: v for k, v in inputs.items() if k in names}
    value = main(**inputs)
    answer = {"value": value, "log": log.getvalue()[-10000:]}
except MemoryError:
    answer = {"error": "MemoryError: the code used more memory than allowed", "code": "code_memory_limit"}
except BaseException as exc:
    lines = traceback.format_exception_only(type(exc), exc)
    answer = {"error": "".join(lines).strip(), "log": log.getvalue()[-10000:]}
_out.write(json.dumps(answer, ensure_ascii=False, default=str))
_out.flush()
"""


async def run_python(code: str, inputs: dict[str, Any], limits: SandboxLimits = SandboxLimits()) -> CodeResult:
    _check_code(code)
    cpu = max(1, int(limits.timeout_s + 0.999))
    request = json.dumps({"code": code, "inputs": inputs}, ensure_ascii=False).encode()
    with tempfile.TemporaryDirectory(prefix="zhiku-py-") as workdir:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-I", "-c", _PY_RUNNER, str(cpu), str(limits.memory_bytes),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
            cwd=workdir, env={}, start_new_session=True)
        try:
            async with asyncio.timeout(limits.timeout_s + 1):
                output = await _communicate(process, request)
        except TimeoutError:
            raise SandboxError(f"the Python code ran longer than {limits.timeout_s:g} s and was stopped",
                               code="code_timeout") from None
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    if output is None:
        raise SandboxError(f"the code returned more than {MAX_OUTPUT_BYTES} bytes", code="code_output_too_large")
    if process.returncode != 0 or not output:
        if process.returncode in (-24, -9):  # SIGXCPU, or SIGKILL at the hard CPU limit
            raise SandboxError(f"the Python code used more than {cpu} s of CPU and was stopped", code="code_timeout")
        raise SandboxError(f"the Python process ended without a result (exit status {process.returncode}); "
                           "it may have run out of its memory limit", code="code_memory_limit")
    answer = json.loads(output)
    if "error" in answer:
        raise SandboxError(f"the Python code failed: {answer['error']}", code=answer.get("code", "code_failed"))
    return CodeResult(value=answer["value"], log=answer.get("log", "")[:MAX_LOG_CHARS])


async def _communicate(process: asyncio.subprocess.Process, request: bytes) -> bytes | None:
    """Write the request, read at most ``MAX_OUTPUT_BYTES`` back (None past that), wait for the exit."""
    assert process.stdin is not None and process.stdout is not None
    try:
        process.stdin.write(request)
        await process.stdin.drain()
        process.stdin.close()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the child died early; its exit status says why
    chunks: list[bytes] = []
    size = 0
    while chunk := await process.stdout.read(65536):
        size += len(chunk)
        if size > MAX_OUTPUT_BYTES:
            return None
        chunks.append(chunk)
    await process.wait()
    return b"".join(chunks)


def _check_code(code: str) -> None:
    if len(code) > MAX_CODE_CHARS:
        raise SandboxError(f"the code has {len(code)} characters; at most {MAX_CODE_CHARS}", code="code_too_large")


def _first_lines(text: str, count: int = 6) -> str:
    return "\n".join(text.strip().splitlines()[:count])
