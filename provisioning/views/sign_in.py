"""Signing in and out: the sign-in page (the identity provider first, then the password form where passwords are
allowed), the provider's round trip, and logging out of orgdns and, where the provider supports it, of the provider."""

from django.conf import settings
from django.contrib.auth import login, logout
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.views import LoginView
from django.core.exceptions import ValidationError
from django.db import IntegrityError
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from provisioning.services import audit
from provisioning.services.people import identities, sign_in

from ..models import AuditEvent


class PasswordForm(AuthenticationForm):
    """The password form, which says so at once when passwords are off for the typed name (no password is checked)."""

    error_messages = {**AuthenticationForm.error_messages, "invalid_login": "Wrong username or password."}

    def clean(self):
        username = (self.cleaned_data.get("username") or "")[:150]
        if username and not sign_in.local_password_allowed(username):
            audit.record(
                "login.refused",
                None,
                outcome=AuditEvent.Outcome.REFUSED,
                detail=f"password sign-in for {username!r}: passwords are off but for break-glass accounts",
            )
            raise ValidationError(
                f"Passwords are switched off here: sign in with {sign_in.provider_name()}. Only break-glass accounts "
                "use a password.",
                code="passwords_off",
            )
        return super().clean()


class SignInView(LoginView):
    form_class = PasswordForm

    def get_context_data(self, **kwargs):
        return {
            **super().get_context_data(**kwargs),
            "provider": sign_in.provider_name() if sign_in.provider_enabled() else "",
            "passwords_for_everyone": settings.ORGDNS_LOCAL_LOGIN,
        }


def failed(request, failure):
    """The clear page of a failed sign-in through the provider (and its audit record and throttling count)."""
    sign_in.record_failure(request, failure)
    context = {"message": failure.message, "provider": sign_in.provider_name()}
    return render(request, "registration/sign_in_failed.html", context, status=failure.status)


@login_not_required
def provider_start(request):
    """Send the browser to the identity provider (state, nonce and PKCE verifier kept in the session)."""
    if not sign_in.provider_enabled():
        return redirect("login")
    if sign_in.provider_sign_in_locked(request):
        return render(request, "registration/locked_out.html", status=429)
    try:
        url = sign_in.start(request, request.build_absolute_uri(reverse("oidc-callback")), request.GET.get("next"))
    except sign_in.SignInFailed as failure:
        return failed(request, failure)
    return redirect(url)


@login_not_required
def provider_callback(request):
    """The provider's answer: verified, then the person signed in with their groups applied."""
    if not sign_in.provider_enabled():
        return redirect("login")
    if sign_in.provider_sign_in_locked(request):
        return render(request, "registration/locked_out.html", status=429)
    next_url = request.session.pop(sign_in.NEXT_KEY, "")
    try:
        user = identities.signed_in_user(sign_in.finish(request))
    except sign_in.SignInFailed as failure:
        return failed(request, failure)
    except IntegrityError:  # the same person's first sign-in, twice at once: the other one made the user
        concurrent = sign_in.SignInFailed("Signing in did not finish: start again.", "concurrent first sign-in")
        return failed(request, concurrent)
    login(request, user, backend=sign_in.IDENTITY_PROVIDER_BACKEND)
    return redirect(sign_in.safe_next(request, next_url) or settings.LOGIN_REDIRECT_URL)


@login_not_required
@require_POST
def logout_view(request):
    """End orgdns's session; then, if the user signed in through a provider that offers it, its session too."""
    through_provider = request.session.get("_auth_user_backend") == sign_in.IDENTITY_PROVIDER_BACKEND
    logout(request)
    after = request.build_absolute_uri(reverse("login"))
    provider_logout = sign_in.logout_url(after) if through_provider else ""
    return redirect(provider_logout or "login")
