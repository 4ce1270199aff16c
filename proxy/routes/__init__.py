"""Every HTTP route of the proxy."""

from proxy.routes import admin, batches, chat, completions, messages, models, responses, usage, ws
from proxy.routes.files import files_router

routes = [
    chat.chat_completions,
    completions.completions,
    models.list_models,
    models.retrieve_model,
    models.health,
    models.openapi_document,
    models.metrics_endpoint,
    usage.usage,
    usage.route,
    *admin.routes,
    *batches.routes,
    *responses.routes,
    *messages.routes,
    ws.chat_socket,
]

__all__ = ["files_router", "routes"]
