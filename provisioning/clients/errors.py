class ProviderError(Exception):
    """A failed call to AWS, Vault or a cluster, with a message fit to show a user.

    permanent=True: retrying cannot help (bad input, refused credentials); the job fails at once.
    permanent=False: the remote side was busy or unreachable; the job may be retried.
    """

    def __init__(self, message: str, *, service: str, permanent: bool, code: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.service = service
        self.permanent = permanent
        self.code = code  # the remote error code, where the remote side gives one (e.g. NoSuchEntity)

    def __str__(self) -> str:
        return self.message
