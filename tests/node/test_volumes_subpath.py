"""volumeMounts with subPath: the process-mode env var and the namespace-mode bind mount both
point below the volume, and the sub-directory is created when missing."""

from __future__ import annotations

from pathlib import Path

from podns.node.sandbox import Mount
from podns.node.volumes import container_env, container_mounts, env_var_name_for_volume


def test_sub_path_is_created_and_used_by_env_and_mounts(tmp_path: Path) -> None:
    """given a volume dir and mounts with and without subPath, env vars and bind mounts name
    the sub-directory (created) or the volume itself; unknown volumes are skipped."""
    data = tmp_path / "data"
    data.mkdir()
    container = {"volumeMounts": [
        {"name": "data", "mountPath": "/var/lib/db", "subPath": "pg/main", "readOnly": True},
        {"name": "whole", "mountPath": "srv"},
        {"name": "unknown", "mountPath": "/x"},
    ]}
    volumes = {"data": data, "whole": tmp_path / "whole"}
    env = container_env(container, volumes)
    assert env == {env_var_name_for_volume("data"): str(data / "pg" / "main"),
                   env_var_name_for_volume("whole"): str(tmp_path / "whole")}
    assert (data / "pg" / "main").is_dir()
    assert container_mounts(container, volumes) == [
        Mount(str(data / "pg" / "main"), "/var/lib/db", True),
        Mount(str(tmp_path / "whole"), "/srv", False),
    ]
