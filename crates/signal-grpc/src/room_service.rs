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

use std::time::Duration;

use crate::{
    Hub,
    hub::NewRoom,
    store::{CreateOutcome, RecordPatch},
};

/// The RoomService of one signal process.
#[derive(Clone)]
pub struct RoomApi {
    hub: Hub,
    auth: AuthClient,
}

impl RoomApi {
    pub fn new(hub: Hub, auth: AuthClient) -> Self {
        Self { hub, auth }
    }

    /// The caller's verified claims, from `authorization: Bearer <token>`.
    async fn claims<T>(&self, request: &Request<T>) -> Result<pb::Claims, Status> {
        let token = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| Status::unauthenticated("missing authorization: Bearer <token>"))?;
        self.auth.verify(token).await.map_err(Status::from)
    }

    /// The one check every call passes: `authorization: Bearer <token>`,
    /// verified by auth, granting `grant` on `room`. Returns the room.
    async fn authorize<T>(
        &self,
        request: &Request<T>,
        grant: BackendGrant,
        room: &str,
    ) -> Result<RoomId, Status> {
        let claims = self.claims(request).await?;
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

type EventStream =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<pb::RoomEvent, Status>> + Send>>;

/// Events queued for one watcher before its stream waits (it reads from the
/// log at its own pace: a slow watcher delays only itself).
const WATCH_QUEUE: usize = 64;

#[tonic::async_trait]
impl pb::room_service_server::RoomService for RoomApi {
    type WatchRoomEventsStream = EventStream;

    async fn watch_room_events(
        &self,
        request: Request<pb::WatchRoomEventsRequest>,
    ) -> Result<Response<EventStream>, Status> {
        // Every room the token covers, or the one asked for.
        let claims = self.claims(&request).await?;
        let wanted = request.get_ref().room.clone();
        let probe = if wanted.is_empty() {
            ""
        } else {
            wanted.as_str()
        };
        let grant = claims.grants.clone().unwrap_or_default();
        if !wanted.is_empty() {
            self.authorize(&request, BackendGrant::RoomList, probe)
                .await?;
        } else if !grant.room_list {
            return Err(Status::permission_denied(
                "the token does not grant roomList",
            ));
        }
        let log = self.hub.events().clone();
        let mut cursor = match request.get_ref().cursor.as_str() {
            "" => log.now().await.map_err(|e| status(e.into()))?,
            given => given.to_owned(),
        };
        let room_grant = grant.room;
        let (tx, rx) = tokio::sync::mpsc::channel(WATCH_QUEUE);
        tokio::spawn(async move {
            // Ends when the watcher goes (its receiver is dropped).
            loop {
                let batch = match log.read(&cursor).await {
                    Ok(batch) => batch,
                    Err(err) => {
                        let _ = tx.send(Err(status(err.into()))).await;
                        return;
                    }
                };
                if batch.missed {
                    let missed = pb::RoomEvent {
                        cursor: cursor.clone(),
                        at_ms: 0,
                        room: String::new(),
                        event: Some(pb::room_event::Event::Missed(pb::EventsMissed {})),
                    };
                    if tx.send(Ok(missed)).await.is_err() {
                        return;
                    }
                }
                let empty = batch.events.is_empty();
                for event in batch.events {
                    let shown = if wanted.is_empty() {
                        switchboard_proto::validate::room_granted(&room_grant, &event.room)
                    } else {
                        event.room == wanted
                    };
                    if shown && tx.send(Ok(event)).await.is_err() {
                        return;
                    }
                }
                cursor = batch.next;
                if empty {
                    tokio::select! {
                        () = log.changed() => {}
                        () = tx.closed() => return,
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn get_room(
        &self,
        request: Request<pb::GetRoomRequest>,
    ) -> Result<Response<pb::Room>, Status> {
        let room = self
            .authorize(&request, BackendGrant::RoomList, &request.get_ref().room)
            .await?;
        let info = self.hub.room(&room).await.map_err(status)?;
        Ok(Response::new(info.to_proto(self.hub.max_participants())))
    }

    async fn create_room(
        &self,
        request: Request<pb::CreateRoomRequest>,
    ) -> Result<Response<pb::Room>, Status> {
        let room = self
            .authorize(&request, BackendGrant::RoomCreate, &request.get_ref().room)
            .await?;
        let call = request.into_inner();
        let new = NewRoom {
            max_participants: call.max_participants,
            empty_timeout: Duration::from_secs(call.empty_timeout_seconds.into()),
            metadata: call.metadata,
        };
        match self.hub.create_room(&room, new).await.map_err(status)? {
            CreateOutcome::Created(info) => {
                Ok(Response::new(info.to_proto(self.hub.max_participants())))
            }
            CreateOutcome::Exists => Err(Status::already_exists("the room was created already")),
            CreateOutcome::TooMany => Err(Status::resource_exhausted(
                "the most rooms this service holds exist already",
            )),
        }
    }

    async fn list_rooms(
        &self,
        request: Request<pb::ListRoomsRequest>,
    ) -> Result<Response<pb::ListRoomsResponse>, Status> {
        let claims = self.claims(&request).await?;
        let grant = claims.grants.clone().unwrap_or_default();
        if !grant.room_list {
            return Err(Status::permission_denied(
                "the token does not grant roomList",
            ));
        }
        let call = request.into_inner();
        // Only names within the grant are read at all (the page token is
        // the last name read); an exact grant lists its one room.
        let Some(prefix) = switchboard_proto::grants::listing_prefix(&grant.room, &call.prefix)
        else {
            return Ok(Response::new(pb::ListRoomsResponse::default()));
        };
        let exact = !grant.room.ends_with('*');
        let (rooms, next_page_token) = self
            .hub
            .list_rooms(&prefix, call.page_size, &call.page_token)
            .await
            .map_err(status)?;
        let next_page_token = if exact {
            String::new()
        } else {
            next_page_token
        };
        let max = self.hub.max_participants();
        let rooms = rooms
            .iter()
            .filter(|r| switchboard_proto::validate::room_granted(&grant.room, r.name.as_str()))
            .map(|r| r.to_proto(max))
            .collect();
        Ok(Response::new(pb::ListRoomsResponse {
            rooms,
            next_page_token,
        }))
    }

    async fn update_room_metadata(
        &self,
        request: Request<pb::UpdateRoomMetadataRequest>,
    ) -> Result<Response<pb::Room>, Status> {
        let room = self
            .authorize(&request, BackendGrant::RoomAdmin, &request.get_ref().room)
            .await?;
        let info = self
            .hub
            .update_room_metadata(&room, request.into_inner().metadata)
            .await
            .map_err(status)?;
        Ok(Response::new(info.to_proto(self.hub.max_participants())))
    }

    async fn move_participant(
        &self,
        request: Request<pb::MoveParticipantRequest>,
    ) -> Result<Response<pb::Participant>, Status> {
        // The grant must cover both rooms (one verification).
        let claims = self.claims(&request).await?;
        let call = request.get_ref();
        let mut rooms = Vec::with_capacity(2);
        for name in [&call.room, &call.destination] {
            let room =
                RoomId::new(name).map_err(|e| Status::invalid_argument(format!("room: {e}")))?;
            grants::may_call(&claims, BackendGrant::RoomAdmin, room.as_str())
                .map_err(Status::from)?;
            rooms.push(room);
        }
        let (room, to) = (rooms.remove(0), rooms.remove(0));
        let who = identity(&request.get_ref().identity)?;
        let moved = self
            .hub
            .move_participant(&room, &who, &to)
            .await
            .map_err(status)?;
        Ok(Response::new(moved))
    }

    async fn update_participant(
        &self,
        request: Request<pb::UpdateParticipantRequest>,
    ) -> Result<Response<pb::Participant>, Status> {
        let room = self
            .authorize(&request, BackendGrant::RoomAdmin, &request.get_ref().room)
            .await?;
        let call = request.into_inner();
        let who = identity(&call.identity)?;
        let patch = RecordPatch {
            name: call.name,
            attributes: call.replace_attributes.then_some(call.attributes),
            publish: call.permissions.map(|p| p.publish),
        };
        let participant = self
            .hub
            .update_participant(&room, &who, patch)
            .await
            .map_err(status)?;
        Ok(Response::new(participant))
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

    async fn get_participant(
        &self,
        request: Request<pb::GetParticipantRequest>,
    ) -> Result<Response<pb::Participant>, Status> {
        let room = self
            .authorize(&request, BackendGrant::RoomList, &request.get_ref().room)
            .await?;
        let who = identity(&request.get_ref().identity)?;
        let member = self
            .hub
            .room_members(&room)
            .await
            .map_err(status)?
            .into_iter()
            .find(|m| m.participant == who)
            .ok_or_else(|| Status::not_found("no such participant in this room"))?;
        Ok(Response::new(member.to_participant(None)))
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
