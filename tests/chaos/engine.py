"""A Docker engine of the chaos suite's own: a second `dockerd` beside the machine's, with its
own socket, data root, exec root, pid file and cgroup parent, and no network of any kind.

Other sessions test against the machine's engine at the same time, so the suite stops and
starts only this one. The sandbox image is copied in from the machine's engine (`docker save`
into `docker load`); everything the engine made is removed when the suite ends.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import docker
from tether.sandbox.manager import SandboxManager

SANDBOX_IMAGE = "tether-sandbox:latest"
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 60


class EngineUnavailable(RuntimeError):
    """A second engine can't be run here (not root, no dockerd, or it would not start)."""


class PrivateEngine:
    def __init__(self) -> None:
        if os.geteuid() != 0:
            raise EngineUnavailable("a second dockerd needs root")
        if shutil.which("dockerd") is None:
            raise EngineUnavailable("no dockerd binary (Debian: apt-get install docker.io)")
        # Under /run and /var/tmp, not /tmp: overlay2 needs a real filesystem for its layers,
        # and a socket path must stay short. Unique names, so two suites never meet.
        self.run_dir = Path(tempfile.mkdtemp(prefix="tether-chaos-", dir="/run"))
        self.data_root = Path(tempfile.mkdtemp(prefix="tether-chaos-data-", dir="/var/tmp"))
        self.cgroup_parent = self.run_dir.name
        (self.run_dir / "daemon.json").write_text("{}\n")  # not the machine's daemon.json
        self.process: subprocess.Popen[bytes] | None = None
        self._client: docker.DockerClient | None = None

    @property
    def socket(self) -> Path:
        return self.run_dir / "docker.sock"

    @property
    def host(self) -> str:
        """What DOCKER_HOST says to reach this engine."""
        return f"unix://{self.socket}"

    @property
    def log_file(self) -> Path:
        return self.run_dir / "dockerd.log"

    def command(self) -> list[str]:
        return ["dockerd", "--config-file", str(self.run_dir / "daemon.json"),
                "--host", self.host, "--data-root", str(self.data_root),
                "--exec-root", str(self.run_dir / "exec"), "--pidfile", str(self.run_dir / "docker.pid"),
                "--cgroup-parent", f"/{self.cgroup_parent}",
                # No network: no bridge, no iptables or forwarding changes to the machine.
                "--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-masq=false",
                "--ip-forward=false"]

    def start(self) -> None:
        """Starts dockerd and waits until it answers."""
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.answers():
            if self.process.poll() is not None:
                raise EngineUnavailable(f"dockerd exited with {self.process.returncode}: {self.log()}")
            if time.monotonic() > deadline:
                raise EngineUnavailable(f"dockerd did not answer in {START_TIMEOUT_S} s: {self.log()}")
            time.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM, as `systemctl stop docker` would: dockerd stops its containers and exits."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._client = None

    def answers(self) -> bool:
        if not self.socket.exists():
            return False
        client = docker.DockerClient(base_url=self.host, timeout=5)
        try:
            return bool(client.ping())
        except Exception:
            return False
        finally:
            client.close()

    def client(self) -> docker.DockerClient:
        if self._client is None:
            self._client = docker.DockerClient(base_url=self.host, timeout=60)
        return self._client

    def sandboxes(self) -> SandboxManager:
        return SandboxManager(self.client())

    def load_image(self, image: str = SANDBOX_IMAGE) -> None:
        """Copies the image from the machine's engine (`make image` built it there)."""
        save = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        load = subprocess.run(["docker", "-H", self.host, "load", "-q"], stdin=save.stdout,
                              capture_output=True, timeout=300, check=False)
        assert save.stdout is not None
        save.stdout.close()
        _, saved_error = save.communicate(timeout=60)
        if save.returncode != 0:
            raise EngineUnavailable(f"docker save {image} failed (run `make image`): "
                                    f"{saved_error.decode(errors='replace').strip()}")
        if load.returncode != 0:
            raise EngineUnavailable(f"docker load failed: {load.stderr.decode(errors='replace').strip()}")

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")[-3000:] if self.log_file.exists() else ""

    def remove_everything(self) -> list[str]:
        """Stops the engine and removes all it made: containers, mounts, cgroups, files.
        Returns what was still there to remove besides the directories (should be nothing
        but the engine itself)."""
        left: list[str] = []
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(Exception):
                for container in self.client().containers.list(all=True):
                    left.append(f"container {container.name}")
                    container.remove(force=True, v=True)
        self.stop()
        for mount in reversed(self._mounts()):
            left.append(f"mount {mount}")
            subprocess.run(["umount", "-l", mount], check=False, capture_output=True)
        for controller in Path("/sys/fs/cgroup").glob(f"*/{self.cgroup_parent}"):
            for directory in sorted(controller.rglob("*"), reverse=True):
                if directory.is_dir():
                    with contextlib.suppress(OSError):
                        directory.rmdir()
            with contextlib.suppress(OSError):
                controller.rmdir()
        shutil.rmtree(self.run_dir, ignore_errors=True)
        shutil.rmtree(self.data_root, ignore_errors=True)
        return left

    def _mounts(self) -> list[str]:
        roots = (str(self.run_dir), str(self.data_root))
        with open("/proc/self/mounts") as mounts:
            points = [line.split()[1] for line in mounts]
        return [point for point in points if point.startswith(roots)]

    def leftovers(self) -> list[str]:
        """What of this engine is still on the machine after `remove_everything`."""
        found = [f"mount {m}" for m in self._mounts()]
        found += [str(p) for p in (self.run_dir, self.data_root) if p.exists()]
        found += [str(p) for p in Path("/sys/fs/cgroup").glob(f"*/{self.cgroup_parent}")]
        found += [f"process {pid}" for pid in self._processes()]
        return found

    def _processes(self) -> list[int]:
        """Processes of this engine's (dockerd, its containerd, shims): they name its paths."""
        mine = []
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            with contextlib.suppress(OSError):
                if str(self.run_dir).encode() in cmdline.read_bytes():
                    mine.append(int(cmdline.parent.name))
        return mine
