"""Service-wide information: the personas on offer and the state of the queue and workers."""

from __future__ import annotations

from fastapi import APIRouter

from api.auth import CallerDep, ServiceDep
from api.deps import DbDep, ModelSettingsDep, QueueDep
from api.services.system import system_status
from shared.personas import PERSONAS
from shared.schemas import PersonaOut, SystemStatus

router = APIRouter(prefix="/api", tags=["system"])


@router.get("/personas", response_model=list[PersonaOut])
def personas(_caller: CallerDep) -> list[PersonaOut]:
    return [PersonaOut(key=p.key, names=p.names) for p in PERSONAS.values()]


@router.get("/system", response_model=SystemStatus)
def system(_caller: ServiceDep, db: DbDep, queue: QueueDep, model: ModelSettingsDep) -> SystemStatus:
    """Queue length, answers in progress, live workers, the model and its recent speed (the
    operator's view; the bot shows it to its admins)."""
    return system_status(db, queue, model)
