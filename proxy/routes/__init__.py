"""Every HTTP route of the proxy."""

from proxy.routes import admin, chat, models, usage

routes = [
    chat.chat_completions,
    models.list_models,
    models.retrieve_model,
    models.health,
    usage.usage,
    usage.route,
    *admin.routes,
]
