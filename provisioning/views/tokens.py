"""The user's personal API tokens: make one (shown once, on this response only), see them, revoke them."""

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from provisioning.services.people import api_tokens

from ..forms import ApiTokenForm
from ..models import ApiToken


@never_cache
def token_list(request):
    form = ApiTokenForm(request.POST or None, user=request.user)
    created = None
    if form.is_valid():
        try:
            data = form.cleaned_data
            token, raw = api_tokens.create_token(
                request.user,
                data["name"],
                data["days"],
                data["form_key"],
                read_only=data["read_only"],
                organizations=data["organizations"],
            )
        except ValidationError as exc:
            messages.error(request, exc.messages[0])
        else:
            created = {"token": token, "raw": raw}
        form = ApiTokenForm(user=request.user)  # a new form key: this one has been used
    tokens = api_tokens.tokens_of(request.user).prefetch_related("organizations")
    context = {
        "form": form,
        "created": created,
        "tokens": tokens,
        "now": timezone.now(),
        "cap": settings.ORGDNS_API_TOKENS_PER_USER,
    }
    return render(request, "provisioning/tokens.html", context)


@require_POST
def token_revoke(request, pk):
    try:
        token = api_tokens.revoke_token(request.user, pk)
    except ApiToken.DoesNotExist:
        raise Http404("No API token of yours matches the given query.") from None
    except ValidationError as exc:
        messages.error(request, exc.messages[0])
    else:
        messages.success(request, f"Token {token} is revoked: it no longer works.")
    return redirect("api-tokens")
