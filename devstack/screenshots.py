"""`make screenshots`: start the demo, open its main pages in Chromium and save a PNG of each in docs/screenshots/."""

from playwright.sync_api import sync_playwright

from devstack.demo import ROOT, running_stack
from devstack.processes import chromium

OUT = ROOT / "docs" / "screenshots"


def pages():
    """(file name, path) of each main page, with the demo's own ids."""
    from provisioning.models import Certificate, Cluster, Operation

    cluster = Cluster.objects.get(name="demo-1")
    operation = Operation.objects.filter(cluster=cluster).latest("created_at")
    certificate = Certificate.objects.get()
    return [
        ("home", "/"),
        ("organization", "/orgs/demo/"),
        ("cluster", f"/orgs/demo/clusters/{cluster.pk}/"),
        ("operation", f"/operations/{operation.pk}/"),
        ("zone", "/orgs/demo/zone/"),
        ("members", "/orgs/demo/members/"),
        ("register-cluster", "/orgs/demo/clusters/new"),
        ("certificates", "/orgs/demo/certificates/"),
        ("certificate", f"/orgs/demo/certificates/{certificate.pk}/"),
        ("billing", "/billing/"),
        ("list-clusters", "/clusters/"),
        ("list-operations", "/operations/"),
        ("list-zones", "/zones/"),
        ("audit", "/audit/"),
        ("admin-clusters", "/admin/provisioning/cluster/"),
    ]


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    with running_stack() as (env, password, _directory):
        targets = pages()  # the ORM is not usable inside Playwright's sync context
        with sync_playwright() as playwright:
            shoot(playwright, env["ORGDNS_URL"], password, targets)


def shoot(playwright, base, password, targets):
    path, args = chromium()
    browser = playwright.chromium.launch(executable_path=path, args=args)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{base}/login/")
    page.screenshot(path=OUT / "sign-in.png", full_page=True)
    print(f"wrote {(OUT / 'sign-in.png').relative_to(ROOT)}")
    page.get_by_text("Break-glass account").click()  # the demo's admin: passwords are off for everyone else
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base}/")
    phone = [("phone-organization", "/orgs/demo/"), ("phone-cluster", dict(targets)["cluster"])]
    for width, shots in ((1280, targets), (390, phone)):
        page.set_viewport_size({"width": width, "height": 900})
        for name, path in shots:
            page.goto(base + path)
            page.wait_for_load_state("networkidle")
            page.screenshot(path=OUT / f"{name}.png", full_page=True)
            print(f"wrote {(OUT / f'{name}.png').relative_to(ROOT)}")
    browser.close()


if __name__ == "__main__":
    main()
