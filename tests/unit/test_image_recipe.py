"""The image's recipe (image/Containerfile) keeps what orgdns runs: botocore's models of every AWS service it calls."""

import re

from devstack.image import ROOT
from provisioning.clients import aws


def test_the_image_keeps_the_model_of_every_aws_service_orgdns_calls():
    containerfile = (ROOT / "image" / "Containerfile").read_text()
    (kept,) = re.findall(r'^ARG AWS_SERVICES="([^"]*)"$', containerfile, re.MULTILINE)
    called = {service.service for service in aws.AwsService.__subclasses__()}
    assert "route53" in called
    missing = called - set(kept.split())
    assert not missing, f"add {', '.join(sorted(missing))} to AWS_SERVICES in image/Containerfile"
