"""The DRF API: ``path("api/connectycube/", include("django_connectycube.api.urls"))``.

See :mod:`.views` for the endpoints, :mod:`.throttling` for the failed-login lockout and
:mod:`.cidp` for the Custom Identity Provider endpoint served alongside.
"""
