"""orgdns's image and Helm chart on this machine, for the tests and bench/image.py: helm (built from its Go module by
devstack/build-cluster.sh), the image (image/build.sh) and podman runs of the chart's workloads.

No kubelet runs here, so `podman_run_command` plays its part for one rendered workload: the container's args, its
environment (env with $(VAR) references expanded, the pod's address for status.podIP, envFrom of the rendered
ConfigMap and of the Secret's data given), its emptyDir mounts as tmpfs, and its securityContext (user, read-only root
filesystem, no capabilities, no privilege escalation). The rest of the root filesystem stays read-only, as in a pod.
"""

import os
import re
import subprocess
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "orgdns"
CONTAINERS = ROOT / "image" / "containers.sh"
BUILD_SCRIPT = ROOT / "image" / "build.sh"
HELM_VERSION = "v4.3.2"
IMAGE = "localhost/orgdns:latest"


def helm_binary():
    """The path of helm, built from its Go module the first time (about 3 min)."""
    cache = Path(os.environ.get("ORGDNS_BIN_CACHE", Path.home() / ".cache/orgdns/bin"))
    path = cache / f"helm-{HELM_VERSION}"
    if not path.exists():
        subprocess.run(
            ["bash", str(ROOT / "devstack" / "build-cluster.sh"), "helm"], check=True, stdout=subprocess.DEVNULL
        )
    return str(path)


def helm(*args, kubeconfig=None, timeout=300):
    """helm ARGS, its output; a failure raises with what helm said."""
    env = {**os.environ, "HELM_CACHE_HOME": str(Path(tempfile.gettempdir()) / "orgdns-helm-cache")}
    if kubeconfig:
        env["KUBECONFIG"] = str(kubeconfig)
    done = subprocess.run([helm_binary(), *args], env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode:
        raise HelmFailed(f"helm {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


class HelmFailed(Exception):
    pass


def values_file(values, directory):
    path = Path(directory) / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def render(values, directory, release="orgdns", namespace="orgdns"):
    """The chart's objects as `helm template` renders them with these values (hooks included)."""
    output = helm("template", release, str(CHART), "--namespace", namespace, "-f", str(values_file(values, directory)))
    return [obj for obj in yaml.safe_load_all(output) if obj]


def workload(objects, kind, name_suffix):
    """The rendered object of that kind whose name ends with -name_suffix (e.g. Deployment, web)."""
    (found,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"].endswith(f"-{name_suffix}")]
    return found


# --- podman ---------------------------------------------------------------------------------------------------------


def podman(*args, check=True, timeout=600, **popen):
    """image/containers.sh podman ARGS (this sandbox's storage, runtime and cgroup settings)."""
    return subprocess.run([str(CONTAINERS), "podman", *args], check=check, timeout=timeout, text=True, **popen)


def image_exists(image=IMAGE):
    return podman("image", "exists", image, check=False).returncode == 0


def build_image(*options):
    """`make image` without the archive: builds localhost/orgdns:latest (and :<version>) from this checkout."""
    subprocess.run([str(BUILD_SCRIPT), "--no-archive", *options], check=True, timeout=3600)


def podman_run_command(objects, pod_template, secret_data, name, pod_ip="127.0.0.1", image=None):
    """The `podman run` arguments that run the first container of pod_template (a rendered Deployment's or Job's
    spec.template) as a kubelet would, on the host's network; secret_data is the Secret its envFrom names."""
    spec = pod_template["spec"]
    (container,) = spec["containers"]
    pod_security, security = spec.get("securityContext", {}), container.get("securityContext", {})
    command = ["run", "--rm", "--name", name, "--network", "host", "--pull", "never"]
    user = security.get("runAsUser", pod_security.get("runAsUser"))
    group = security.get("runAsGroup", pod_security.get("runAsGroup"))
    if user is not None:
        command += ["--user", f"{user}:{group}" if group is not None else str(user)]
    if security.get("readOnlyRootFilesystem"):
        command += ["--read-only", "--read-only-tmpfs=false"]  # only the pod's volumes are writable
    if security.get("allowPrivilegeEscalation") is False:
        command += ["--security-opt", "no-new-privileges"]
    for capability in security.get("capabilities", {}).get("drop", []):
        command += ["--cap-drop", capability.lower()]
    volumes = {volume["name"]: volume for volume in spec.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        if "emptyDir" not in volume:
            raise ValueError(f"volume {mount['name']}: only emptyDir volumes can be run here")
        command += ["--tmpfs", f"{mount['mountPath']}:rw,mode=1777"]
    for variable, value in container_environment(objects, container, secret_data, pod_ip).items():
        command += ["--env", f"{variable}={value}"]
    return [*command, image or container["image"], *container.get("command", []), *container.get("args", [])]


def container_environment(objects, container, secret_data, pod_ip):
    """The environment of the container: envFrom first, then env (which wins), $(VAR) expanded as the kubelet does."""
    config_maps = {o["metadata"]["name"]: o.get("data", {}) for o in objects if o["kind"] == "ConfigMap"}
    environment = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            environment.update(config_maps[source["configMapRef"]["name"]])
        elif "secretRef" in source:
            environment.update(secret_data)
    for variable in container.get("env", []):
        if "value" in variable:
            environment[variable["name"]] = _expand(variable["value"], environment)
        elif variable["valueFrom"].get("fieldRef", {}).get("fieldPath") == "status.podIP":
            environment[variable["name"]] = pod_ip
        else:
            raise ValueError(f"env {variable['name']}: only values and status.podIP can be run here")
    return environment


def _expand(value, environment):
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: environment.get(m[1], m[0]), value)
