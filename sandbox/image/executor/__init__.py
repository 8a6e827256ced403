"""tether's in-container executor: the sandbox's main process.

It reads one JSON request a line on stdin and writes one JSON response a line on stdout,
over the container's attached stream: no network, no host mount, no `docker exec` per call.
Standard library only, so it runs on any image with python3. The image runs this folder
(`python3 -u /opt/tether/executor`, see `__main__.py`); `main.py` starts it, `serving.py` answers
the requests, and each of the others does one thing the requests need (`processes.py`,
`output.py`, `tool_files.py`, `workspace.py`, `mcp.py`, `egress.py`, `limits.py`,
`privileges.py`). The host imports `output.CappedBuffer` too, to cap `docker exec` alike.

Guarantees it gives the host:
- exactly once: a request carries an idempotency key; a key already finished returns its
  recorded result, a key still running is awaited, and no key ever runs twice;
- a timeout or a cancel kills the call's whole process group, and when no call is running,
  every process the calls left behind (daemons, `setsid` escapees) is killed too, and gone,
  before the call's result is sent;
- output is capped while it is read: head and tail kept, the middle counted and dropped;
- a container taken from a warm pool is bound to one run, once: it never serves another;
- a tool that runs out of memory is killed, not the executor: the executor lowers its own OOM
  score and starts every tool at the highest, and the memory-backed workspace has room of
  its own beside `memory_mb` (the host sizes the container so);
- no tool reaches the host's stream: the executor is the container's init (PID 1), the only
  process holding the stream, and not dumpable, so its /proc entries (file descriptors,
  memory) are root's, and a process of its namespace can neither trace nor signal it. As
  init it also reaps every orphan the tools leave.
"""
