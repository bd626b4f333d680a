import re
import secrets
from typing import cast

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError

from provisioning.rules.validators import (
    validate_certificate_namespace,
    validate_cluster_name,
    validate_org_name,
    validate_secret_name,
)
from provisioning.services.certificates import actions as certificates
from provisioning.services.clusters import actions as clusters
from provisioning.services.people import api_tokens

from .models import Cluster, Membership, Organization


class OrganizationForm(forms.Form):
    name = forms.CharField(max_length=63, validators=[validate_org_name], help_text="A lowercase DNS label, e.g. acme.")


class OffboardForm(forms.Form):
    confirmation = forms.CharField(
        label="Type the organization's name to confirm", max_length=200, help_text="Nothing can be undone afterwards."
    )


class MemberForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=Membership.Role.choices, initial=Membership.Role.MEMBER)


class RegisterClusterForm(forms.Form):
    name = forms.CharField(
        max_length=40, validators=[validate_cluster_name], help_text="A lowercase DNS label, e.g. prod-eu-1."
    )
    api_server = forms.CharField(label="API server URL", required=False, help_text="https://host:port")
    ca_pem = forms.CharField(
        label="Cluster CA certificate (PEM)", required=False, widget=forms.Textarea(attrs={"rows": 4})
    )
    token = forms.CharField(label="Bearer token", required=False, widget=forms.PasswordInput(render_value=False))
    kubeconfig = forms.FileField(
        required=False, help_text="Instead of the three fields above: a kubeconfig with an embedded CA and token."
    )
    context = forms.CharField(required=False, help_text="Kubeconfig context to use (default: its current context).")

    def clean(self):
        super().clean()
        data = self.cleaned_data
        upload = data.get("kubeconfig")
        data["connection"] = clusters.cluster_connection(
            api_server=data.get("api_server", ""),
            token=data.get("token", ""),
            ca_pem=data.get("ca_pem", ""),
            # One byte past the limit is enough for cluster_connection to refuse it.
            kubeconfig=upload.read(clusters.MAX_KUBECONFIG_BYTES + 1).decode("utf-8", "replace") if upload else None,
            context=data.get("context", ""),
        )
        return data


class ReplaceTokenForm(RegisterClusterForm):
    """A new connection (the same cluster) for a registered cluster: e.g. the bootstrap's token replacing an older one."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        del self.fields["name"]


class TargetFields(forms.Form):
    namespace = forms.CharField(max_length=63, initial="default", validators=[validate_certificate_namespace])
    secret_name = forms.CharField(
        max_length=253,
        validators=[validate_secret_name],
        help_text="A kubernetes.io/tls Secret with tls.crt, tls.key and ca.crt. orgdns writes only in namespaces "
        "where the cluster's admin bound ClusterRole orgdns-certificates to its ServiceAccount.",
    )


class IssueCertificateForm(TargetFields):
    dns_names = forms.CharField(label="DNS names", widget=forms.Textarea(attrs={"rows": 3}))
    clusters = forms.ModelMultipleChoiceField(
        queryset=Cluster.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Install it into these clusters now (or later, from the certificate's page).",
    )
    field_order = ["dns_names", "clusters", "namespace", "secret_name"]

    def __init__(self, *args, organization, **kwargs):
        super().__init__(*args, **kwargs)
        cast(forms.ModelMultipleChoiceField, self.fields["clusters"]).queryset = certificates.installable_clusters(
            organization
        )
        self.fields["namespace"].required = self.fields["secret_name"].required = False
        self.fields["dns_names"].help_text = (
            f"One per line (or separated by spaces or commas), each {organization.zone_name} or ending in "
            f".{organization.zone_name}; *.{organization.zone_name} for a wildcard."
        )

    def clean(self):
        super().clean()
        data = self.cleaned_data
        chosen = data.get("clusters") or []
        if chosen and not (data.get("namespace") and data.get("secret_name")):
            raise ValidationError("Give the namespace and Secret name to install the certificate into.")
        data["names"] = re.split(r"[\s,]+", data.get("dns_names", ""))
        data["targets"] = [(cluster, data["namespace"], data["secret_name"]) for cluster in chosen]
        return data


class InstallCertificateForm(TargetFields):
    cluster = forms.ModelChoiceField(queryset=Cluster.objects.none())
    field_order = ["cluster", "namespace", "secret_name"]

    def __init__(self, *args, organization, **kwargs):
        super().__init__(*args, **kwargs)
        cast(forms.ModelChoiceField, self.fields["cluster"]).queryset = certificates.installable_clusters(organization)


class ApiTokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What uses it, e.g. ci-deploy-prod.")
    form_key = forms.CharField(max_length=32, widget=forms.HiddenInput)
    days = forms.TypedChoiceField(
        label="Expires in",
        coerce=int,
        choices=[],
        initial=90,
    )

    read_only = forms.BooleanField(
        required=False, label="Read-only", help_text="It can look, but every request that changes something is refused."
    )
    organizations = forms.ModelMultipleChoiceField(
        queryset=Organization.objects.none(),
        required=False,
        label="Only in",
        help_text="The organizations it may reach; none chosen: all of yours.",
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["form_key"].initial = secrets.token_hex(16)
        organizations = cast(forms.ModelMultipleChoiceField, self.fields["organizations"])
        organizations.queryset = Organization.objects.for_user(user).order_by("name")
        allowed = [days for days in api_tokens.LIFETIMES if days <= settings.ORGDNS_API_TOKEN_MAX_DAYS]
        cast(forms.TypedChoiceField, self.fields["days"]).choices = [(days, f"{days} days") for days in allowed]
