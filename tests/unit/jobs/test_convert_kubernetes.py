"""Kubernetes Job/Pod conversion beyond the shared fixtures: every mapped field and every refusal."""

from __future__ import annotations

import json

import pytest

from agora.errors import AgoraError
from agora.jobs import convert
from agora.models.job import GIB, MIB

RICH_JOB = """
apiVersion: batch/v1
kind: Job
metadata:
  name: train
  namespace: ml
  labels: {team: ml}
  annotations: {note: hi}
spec:
  completions: 2
  backoffLimit: 1
  activeDeadlineSeconds: 600
  ttlSecondsAfterFinished: 100
  template:
    metadata:
      labels: {app: trainer}
    spec:
      restartPolicy: OnFailure
      nodeSelector:
        kubernetes.io/arch: amd64
        disk: ssd
      affinity:
        nodeAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            nodeSelectorTerms:
              - matchExpressions:
                  - {key: topology.kubernetes.io/region, operator: In, values: [eu-west, eu-central]}
                  - {key: cores, operator: Gt, values: ["7"]}
                  - {key: spot, operator: DoesNotExist}
              - matchExpressions:
                  - {key: other, operator: Exists}
          preferredDuringSchedulingIgnoredDuringExecution:
            - weight: 30
              preference:
                matchExpressions:
                  - {key: gpu, operator: Exists}
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution: [{topologyKey: x}]
      tolerations: [{key: k, operator: Exists}]
      initContainers:
        - name: fetch
          image: busybox:1.37
          command: [wget, -O, /data/x, "https://example.org/x"]
        - name: unpack
          image: busybox:1.37
          command: [tar, xf, /data/x]
      containers:
        - name: trainer
          image: pytorch/pytorch:2
          imagePullPolicy: Never
          command: [python, train.py]
          args: ["--epochs", "$(EPOCHS)"]
          env:
            - {name: EPOCHS, value: "3"}
            - name: TOKEN
              valueFrom: {secretKeyRef: {name: s, key: t}}
          resources:
            requests: {cpu: 500m, memory: 1Gi, ephemeral-storage: 10Gi}
            limits: {cpu: "2", memory: 1Gi, nvidia.com/gpu: 1, hugepages-2Mi: 1Gi}
          volumeMounts: [{name: data, mountPath: /data}]
        - name: logger
          image: fluent/fluent-bit:3
          resources: {requests: {memory: 129e6, cpu: lots}}
      volumes: [{name: data, emptyDir: {}}]
"""


def test_rich_job_maps_every_meaningful_field() -> None:
    r = convert(RICH_JOB, "kubernetes")
    s = r.spec
    assert (s.name, s.type, s.count) == ("train", "batch", 2)
    assert s.labels == {"team": "ml", "app": "trainer"}
    assert s.retry.attempts == 1
    fetch, unpack, trainer, logger = s.tasks
    assert [t.name for t in s.tasks] == ["fetch", "unpack", "trainer", "logger"]
    assert unpack.depends_on == ("fetch",) and trainer.depends_on == ("unpack",) and logger.depends_on == ("unpack",)
    assert fetch.depends_on == ()
    assert trainer.resources.cpu == 2000 and trainer.resources.memory == GIB and trainer.resources.disk == 10 * GIB
    assert trainer.resources.gpu.count == 1
    assert trainer.allow_pull is False and fetch.allow_pull is True
    assert logger.resources.memory == 129 * 10**6 and logger.resources.cpu == 1000
    assert trainer.env == {"EPOCHS": "3"} and trainer.args == ("--epochs", "$(EPOCHS)")
    assert all(t.timeout == 600 for t in s.tasks)
    constraints = [c.to_dict() for c in s.constraints]
    assert {"key": "arch", "op": "==", "value": "x86_64"} in constraints
    assert {"key": "labels.disk", "op": "==", "value": "ssd"} in constraints
    assert {"key": "location", "op": "in", "value": ["eu-west", "eu-central"]} in constraints
    assert {"key": "labels.cores", "op": ">=", "value": 8} in constraints
    assert [a.to_dict() for a in s.affinities] == [{"key": "labels.gpu", "op": "exists", "weight": 30}]
    w = "\n".join(r.warnings)
    for expected in (
        "metadata.namespace: not supported, ignored",
        "metadata.annotations: not supported, ignored",
        "spec.ttlSecondsAfterFinished: not supported, ignored",
        "spec.template.spec.tolerations: not supported, ignored",
        "spec.template.spec.volumes: not supported, ignored",
        "spec.template.spec.affinity.podAntiAffinity: not supported, ignored",
        "spec.template.spec.containers[0].volumeMounts: not supported, ignored",
        "spec.template.spec.containers[0].resources.limits.hugepages-2Mi: not supported, ignored",
        "spec.template.spec.containers[0].env[1]: valueFrom of TOKEN",
        "spec.template.spec.containers[0].resources.cpu: requests (500m) and limits (2) differ",
        "spec.template.spec.containers[0]: $(VAR) references",
        "spec.template.spec.containers[1].resources.requests.cpu: quantity 'lots' could not be read",
        "operator DoesNotExist on 'spot' has no agora equivalent",
        "nodeSelectorTerms[1]: alternative node selector terms (OR) are not supported",
        "spec.template.spec.containers: 2 containers become 2 agora tasks",
    ):
        assert expected in w, expected
    assert not any("activeDeadlineSeconds" in x for x in r.warnings)


def test_pod_restart_policies_decide_the_job_type() -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web"},
        "spec": {"containers": [{"name": "web", "image": "nginx:1", "ports": [{"containerPort": 80}]}]},
    }
    r = convert(json.dumps(pod), "kubernetes")
    assert r.spec.type == "service" and r.spec.tasks[0].timeout is None
    assert r.spec.tasks[0].network is True and any("ports are not published" in w for w in r.warnings)
    pod["spec"]["restartPolicy"] = "OnFailure"  # type: ignore[index]
    r = convert(json.dumps(pod), "kubernetes", fmt="json")
    assert r.spec.type == "batch" and r.spec.retry.attempts == 6
    assert any(w.startswith("spec.restartPolicy: OnFailure") for w in r.warnings)


def test_resources_from_requests_only_and_defaults() -> None:
    job = """
kind: Job
metadata: {generateName: gen-}
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
        - {name: a, image: busybox, resources: {requests: {cpu: "0.25", memory: 64Mi}}}
"""
    r = convert(job, "kubernetes")
    assert r.spec.name == "gen"
    t = r.spec.tasks[0]
    assert (t.resources.cpu, t.resources.memory, t.resources.disk) == (250, 64 * MIB, GIB)
    assert r.spec.retry.attempts == 6  # Kubernetes' default backoffLimit


@pytest.mark.parametrize("kind", ["Deployment", "CronJob", "Service", None])
def test_unsupported_kinds(kind: str | None) -> None:
    doc = {"apiVersion": "apps/v1", "metadata": {"name": "x"}, "spec": {}}
    if kind:
        doc["kind"] = kind
    with pytest.raises(AgoraError) as info:
        convert(json.dumps(doc), "kubernetes")
    assert info.value.code == "convert_unsupported_kind"
    assert (kind or "without kind") in info.value.message


@pytest.mark.parametrize(
    "text",
    [
        "kind: Job\nspec: [unclosed",
        "",
        "kind: Job\n---\nkind: Pod\n",
        "- just\n- a list\n",
        "kind: Pod\nspec: {containers: []}\n",
        "!!python/object/apply:os.system ['true']",
        b"\xff\xfe",
    ],
)
def test_unparsable_inputs(text: str | bytes) -> None:
    with pytest.raises(AgoraError) as info:
        convert(text, "kubernetes")
    assert info.value.code == "convert_parse_failed"


def test_values_agora_cannot_accept_are_reported_with_agora_paths() -> None:
    pod = "kind: Pod\nspec: {restartPolicy: Never, containers: [{name: a, image: 'bad image'}]}\n"
    with pytest.raises(AgoraError) as info:
        convert(pod, "kubernetes")
    assert info.value.code == "job_spec_invalid"
    assert info.value.details["errors"][0]["path"] == "tasks[0].image"
