import re

from django import forms
from django.core.exceptions import ValidationError

from .models import Cluster
from .services import certificates
from .validators import validate_namespace_name, validate_secret_name


class TargetFields(forms.Form):
    namespace = forms.CharField(max_length=63, initial="default", validators=[validate_namespace_name])
    secret_name = forms.CharField(
        max_length=253,
        validators=[validate_secret_name],
        help_text="A kubernetes.io/tls Secret with tls.crt, tls.key and ca.crt; the namespace is created if missing.",
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
        self.fields["clusters"].queryset = certificates.installable_clusters(organization)
        self.fields["namespace"].required = self.fields["secret_name"].required = False
        self.fields["dns_names"].help_text = (
            f"One per line (or separated by spaces or commas), each {organization.zone_name} or ending in "
            f".{organization.zone_name}; *.{organization.zone_name} for a wildcard."
        )

    def clean(self):
        data = super().clean()
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
        self.fields["cluster"].queryset = certificates.installable_clusters(organization)
