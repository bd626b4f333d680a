from django import forms
from django.core.exceptions import ValidationError

from .clients.kube import ClusterConnection, InvalidConnection, connection_from_kubeconfig
from .models import Membership
from .validators import validate_cluster_name, validate_org_name

MAX_KUBECONFIG_BYTES = 256 * 1024


class OrganizationForm(forms.Form):
    name = forms.CharField(max_length=63, validators=[validate_org_name], help_text="A lowercase DNS label, e.g. acme.")


class MemberForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=Membership.Role.choices, initial=Membership.Role.MEMBER)


class RegisterClusterForm(forms.Form):
    name = forms.CharField(max_length=40, validators=[validate_cluster_name], help_text="A lowercase DNS label, e.g. prod-eu-1.")
    api_server = forms.CharField(label="API server URL", required=False, help_text="https://host:port")
    ca_pem = forms.CharField(label="Cluster CA certificate (PEM)", required=False, widget=forms.Textarea(attrs={"rows": 4}))
    token = forms.CharField(label="Bearer token", required=False, widget=forms.PasswordInput(render_value=False))
    kubeconfig = forms.FileField(required=False, help_text="Instead of the three fields above: a kubeconfig with an embedded CA and token.")
    context = forms.CharField(required=False, help_text="Kubeconfig context to use (default: its current context).")

    def clean(self):
        data = super().clean()
        upload = data.get("kubeconfig")
        try:
            if upload:
                if upload.size > MAX_KUBECONFIG_BYTES:
                    raise ValidationError("The kubeconfig is larger than 256 KiB.")
                data["connection"] = connection_from_kubeconfig(upload.read().decode("utf-8", "replace"), data.get("context") or None)
            elif data.get("api_server") or data.get("token"):
                data["connection"] = ClusterConnection(
                    server=data.get("api_server", "").strip(), token=data.get("token", "").strip(), ca_pem=data.get("ca_pem", "").strip()
                )
            else:
                raise ValidationError("Give the API server URL and a token, or upload a kubeconfig.")
        except InvalidConnection as exc:
            raise ValidationError(f"Cluster connection: {exc}") from None
        return data
