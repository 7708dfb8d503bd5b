//! `RoomService`: the application's backend calls signal (docs/api.md).
//! Every call is authorized first, by one function ([`RoomApi::authorize`]):
//! a bearer token verified by auth, holding the call's backend grant for a
//! room grant that covers the room.

use switchboard_proto::{
    ParticipantId, RoomId, SignalError,
    auth_client::AuthClient,
    grants::{self, BackendGrant},
    pb,
};
use tonic::{Request, Response, Status};

use crate::Hub;

/// The RoomService of one signal process.
#[derive(Clone)]
pub struct RoomApi {
    hub: Hub,
    auth: AuthClient,
    max_participants: usize,
}

impl RoomApi {
    pub fn new(hub: Hub, auth: AuthClient, max_participants: usize) -> Self {
        Self {
            hub,
            auth,
            max_participants,
        }
    }

    /// The one check every call passes: `authorization: Bearer <token>`,
    /// verified by auth, granting `grant` on `room`. Returns the room.
    async fn authorize<T>(
        &self,
        request: &Request<T>,
        grant: BackendGrant,
        room: &str,
    ) -> Result<RoomId, Status> {
        let token = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| Status::unauthenticated("missing authorization: Bearer <token>"))?;
        let claims = self.auth.verify(token).await.map_err(Status::from)?;
        let room = RoomId::new(room).map_err(|e| Status::invalid_argument(format!("room: {e}")))?;
        grants::may_call(&claims, grant, room.as_str()).map_err(Status::from)?;
        Ok(room)
    }
}

fn identity(raw: &str) -> Result<ParticipantId, Status> {
    ParticipantId::new(raw).map_err(|e| Status::invalid_argument(format!("identity: {e}")))
}

fn status(err: SignalError) -> Status {
    Status::from(err)
}

#[tonic::async_trait]
impl pb::room_service_server::RoomService for RoomApi {
    async fn get_room(
        &self,
        request: Request<pb::GetRoomRequest>,
    ) -> Result<Response<pb::Room>, Status> {
        let room = self
            .authorize(&request, BackendGrant::RoomList, &request.get_ref().room)
            .await?;
        let members = self.hub.room_members(&room).await.map_err(status)?;
        Ok(Response::new(pb::Room {
            name: room.to_string(),
            num_participants: members.len() as u32,
            max_participants: self.max_participants as u32,
        }))
    }

    async fn list_participants(
        &self,
        request: Request<pb::ListParticipantsRequest>,
    ) -> Result<Response<pb::ListParticipantsResponse>, Status> {
        let room = self
            .authorize(&request, BackendGrant::RoomList, &request.get_ref().room)
            .await?;
        let mut participants: Vec<pb::Participant> = self
            .hub
            .room_members(&room)
            .await
            .map_err(status)?
            .iter()
            .map(|m| m.to_participant(None))
            .collect();
        participants.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(Response::new(pb::ListParticipantsResponse { participants }))
    }

    async fn remove_participant(
        &self,
        request: Request<pb::RemoveParticipantRequest>,
    ) -> Result<Response<pb::RemoveParticipantResponse>, Status> {
        let room = self
            .authorize(&request, BackendGrant::Kick, &request.get_ref().room)
            .await?;
        let who = identity(&request.get_ref().identity)?;
        let removed = self
            .hub
            .remove(&room, &who, &request.get_ref().reason)
            .await
            .map_err(status)?;
        if !removed {
            return Err(Status::not_found("no such participant in this room"));
        }
        Ok(Response::new(pb::RemoveParticipantResponse {}))
    }

    async fn close_room(
        &self,
        request: Request<pb::CloseRoomRequest>,
    ) -> Result<Response<pb::CloseRoomResponse>, Status> {
        let room = self
            .authorize(&request, BackendGrant::RoomClose, &request.get_ref().room)
            .await?;
        let removed = self
            .hub
            .close_room(&room, &request.get_ref().reason)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::CloseRoomResponse { removed }))
    }

    async fn send_data(
        &self,
        request: Request<pb::SendDataRequest>,
    ) -> Result<Response<pb::SendDataResponse>, Status> {
        let room = self
            .authorize(&request, BackendGrant::RoomData, &request.get_ref().room)
            .await?;
        let call = request.into_inner();
        let identities = call
            .identities
            .iter()
            .map(|i| identity(i))
            .collect::<Result<Vec<_>, _>>()?;
        let data = pb::Data {
            topic: call.topic,
            payload: call.payload,
        };
        let sent = self
            .hub
            .send_data(&room, &identities, data, &call.idempotency_key)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::SendDataResponse {
            delivered: sent.delivered,
            not_found: sent.not_found,
            duplicate: sent.duplicate,
        }))
    }
}
