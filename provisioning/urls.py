from django.urls import path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("orgs/new", views.organization_create, name="organization-create"),
    path("orgs/<str:org>/", views.organization_detail, name="organization"),
    path("orgs/<str:org>/clusters/new", views.cluster_register, name="cluster-register"),
    path("orgs/<str:org>/clusters/<int:pk>/", views.cluster_detail, name="cluster"),
    path("orgs/<str:org>/clusters/<int:pk>/deregister", views.cluster_deregister, name="cluster-deregister"),
    path("orgs/<str:org>/clusters/<int:pk>/reprovision", views.cluster_reprovision, name="cluster-reprovision"),
    path("operations/<uuid:pk>/", views.operation_detail, name="operation"),
    path("operations/<uuid:pk>/status", views.operation_status, name="operation-status"),
]
