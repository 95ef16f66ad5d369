"""Server-rendered pages of the service: a token login, the studies list, a study's live page, comparisons.

:func:`service.web.app.install` adds them to the API's app. They read through the same repository
functions and models as the JSON routes, and draw their plots with :mod:`studies.plots`.
"""
