"""stackyard: the domain library shared by the operator, the api and the worker."""
