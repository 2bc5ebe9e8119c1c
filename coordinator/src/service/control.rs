//! `ControlService`: thin adapters from requests to engine commands (docs/style.md rule 4). The
//! streaming methods (logs, watch, wait) live in `streams.rs`.

use rota_proto as pb;
use tonic::{Request, Response, Status};

use super::validate;
use crate::engine::{Actor, Command, EngineHandle};

/// Who sent `r`: the credential the guard checked (`Caller`, absent only when a request is
/// built in-process without the guard) and the peer's address, for the audit trail.
pub fn actor<T>(r: &Request<T>) -> Actor {
    let anonymous = rota_proto::access::Caller {
        name: "anonymous".into(),
        role: rota_proto::access::Role::All,
    };
    let caller = r
        .extensions()
        .get::<rota_proto::access::Caller>()
        .unwrap_or(&anonymous);
    Actor::new(caller, r.remote_addr())
}

#[derive(Debug, Clone)]
pub struct ControlService {
    pub engine: EngineHandle,
    /// Ends long-lived streams (logs -f, watch, wait) at shutdown, so a graceful stop does not
    /// wait on a client that follows forever.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
}

type R<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl pb::control_service_server::ControlService for ControlService {
    async fn submit(&self, r: Request<pb::SubmitRequest>) -> R<pb::SubmitResponse> {
        let actor = actor(&r);
        let req = r.into_inner();
        validate::submit(&req)?;
        let runs = self.engine.ask(|t| Command::Submit(req, actor, t)).await?;
        Ok(Response::new(pb::SubmitResponse { runs }))
    }

    async fn create_jobset(&self, r: Request<pb::CreateJobsetRequest>) -> R<pb::Jobset> {
        let actor = actor(&r);
        let req = r.into_inner();
        validate::jobset_name(&req.name)?;
        validate::notify_targets(&req.notify)?;
        Ok(Response::new(
            self.engine
                .ask(|t| Command::CreateJobset(req, actor, t))
                .await?,
        ))
    }

    async fn set_parallel(&self, r: Request<pb::SetParallelRequest>) -> R<pb::Jobset> {
        let actor = actor(&r);
        let req = r.into_inner();
        validate::jobset_name(&req.name)?;
        Ok(Response::new(
            self.engine
                .ask(|t| Command::SetParallel(req, actor, t))
                .await?,
        ))
    }

    async fn get_jobset(&self, r: Request<pb::GetJobsetRequest>) -> R<pb::Jobset> {
        let name = r.into_inner().name;
        validate::jobset_name(&name)?;
        Ok(Response::new(
            self.engine.ask(|t| Command::GetJobset(name, t)).await?,
        ))
    }

    async fn list_jobsets(&self, _: Request<pb::ListJobsetsRequest>) -> R<pb::ListJobsetsResponse> {
        let jobsets = self.engine.ask(Command::ListJobsets).await?;
        Ok(Response::new(pb::ListJobsetsResponse { jobsets }))
    }

    async fn list_runs(&self, r: Request<pb::ListRunsRequest>) -> R<pb::ListRunsResponse> {
        let req = r.into_inner();
        validate::list_runs(&req)?;
        let runs = self.engine.ask(|t| Command::ListRuns(req, t)).await?;
        Ok(Response::new(pb::ListRunsResponse { runs }))
    }

    async fn get_run(&self, r: Request<pb::RunRef>) -> R<pb::Run> {
        let run = validate::run_ref(&r.into_inner().run)?;
        Ok(Response::new(
            self.engine.ask(|t| Command::GetRun(run, t)).await?,
        ))
    }

    type LogsStream = super::streams::BoxStream<pb::LogsResponse>;
    type GetArtifactStream = super::streams::BoxStream<pb::ArtifactData>;

    async fn get_artifact(&self, r: Request<pb::GetArtifactRequest>) -> R<Self::GetArtifactStream> {
        let req = r.into_inner();
        let run = validate::run_ref(&req.run)?;
        if !rota_proto::is_artifact_path(&req.path) {
            return Err(Status::invalid_argument(format!(
                "artifact path {:?} is not a relative path inside RUN_DIR",
                req.path
            )));
        }
        let stream = super::artifacts::of_run(&self.engine, run, &req.path).await?;
        Ok(Response::new(stream))
    }

    async fn logs(&self, r: Request<pb::LogsRequest>) -> R<Self::LogsStream> {
        let req = validate::logs(r.into_inner())?;
        let stream = super::streams::logs(self.engine.clone(), req).await?;
        Ok(Response::new(super::streams::until_shutdown(
            stream,
            self.shutdown.clone(),
        )))
    }

    async fn cancel(&self, r: Request<pb::RunRef>) -> R<pb::Run> {
        let actor = actor(&r);
        let run = validate::run_ref(&r.into_inner().run)?;
        Ok(Response::new(
            self.engine.ask(|t| Command::Cancel(run, actor, t)).await?,
        ))
    }

    async fn retry(&self, r: Request<pb::RetryRequest>) -> R<pb::RetryResponse> {
        let actor = actor(&r);
        let req = validate::retry(r.into_inner())?;
        let runs = self.engine.ask(|t| Command::Retry(req, actor, t)).await?;
        Ok(Response::new(pb::RetryResponse { runs }))
    }

    async fn retire(&self, r: Request<pb::RunRef>) -> R<pb::Run> {
        let actor = actor(&r);
        let run = validate::run_ref(&r.into_inner().run)?;
        Ok(Response::new(
            self.engine.ask(|t| Command::Retire(run, actor, t)).await?,
        ))
    }

    async fn wait(&self, r: Request<pb::WaitRequest>) -> R<pb::WaitResponse> {
        let req = validate::wait(r.into_inner())?;
        let mut stop = self.shutdown.clone();
        tokio::select! {
            res = super::streams::wait(&self.engine, req) => Ok(Response::new(res?)),
            _ = stop.wait_for(|s| *s) => Err(super::streams::shutting_down()),
        }
    }

    type WatchStream = super::streams::BoxStream<pb::RunEvent>;

    async fn watch(&self, r: Request<pb::WatchRequest>) -> R<Self::WatchStream> {
        let req = r.into_inner();
        validate::watch(&req)?;
        let stream = super::streams::watch(&self.engine, req);
        Ok(Response::new(super::streams::until_shutdown(
            stream,
            self.shutdown.clone(),
        )))
    }

    async fn list_agents(&self, _: Request<pb::ListAgentsRequest>) -> R<pb::ListAgentsResponse> {
        let agents = self.engine.ask(Command::ListAgents).await?;
        Ok(Response::new(pb::ListAgentsResponse { agents }))
    }

    async fn drain(&self, r: Request<pb::DrainRequest>) -> R<pb::Agent> {
        let actor = actor(&r);
        let req = r.into_inner();
        validate::drain(&req)?;
        Ok(Response::new(
            self.engine.ask(|t| Command::Drain(req, actor, t)).await?,
        ))
    }

    async fn list_groups(&self, _: Request<pb::ListGroupsRequest>) -> R<pb::ListGroupsResponse> {
        let groups = self.engine.ask(Command::ListGroups).await?;
        Ok(Response::new(pb::ListGroupsResponse { groups }))
    }

    async fn set_group_max(&self, r: Request<pb::SetGroupMaxRequest>) -> R<pb::Group> {
        let actor = actor(&r);
        let req = r.into_inner();
        validate::set_group_max(&req)?;
        Ok(Response::new(
            self.engine
                .ask(|t| Command::SetGroupMax(req, actor, t))
                .await?,
        ))
    }

    async fn apply(&self, r: Request<pb::ApplyRequest>) -> R<pb::ApplyResponse> {
        let actor = actor(&r);
        let req = r.into_inner();
        validate::apply(&req)?;
        Ok(Response::new(
            self.engine.ask(|t| Command::Apply(req, actor, t)).await?,
        ))
    }

    async fn list_jobs(&self, _: Request<pb::ListJobsRequest>) -> R<pb::ListJobsResponse> {
        let jobs = self.engine.ask(Command::ListJobs).await?;
        Ok(Response::new(pb::ListJobsResponse { jobs }))
    }

    async fn trigger(&self, r: Request<pb::TriggerRequest>) -> R<pb::Run> {
        let actor = actor(&r);
        let req = r.into_inner();
        validate::trigger(&req)?;
        Ok(Response::new(
            self.engine
                .ask(|t| Command::Trigger(req.into(), actor, t))
                .await?,
        ))
    }

    async fn import_runs(&self, r: Request<pb::ImportRunsRequest>) -> R<pb::ImportRunsResponse> {
        Ok(Response::new(
            super::import::import_runs(&self.engine, r.into_inner()).await?,
        ))
    }

    async fn status(&self, _: Request<pb::StatusRequest>) -> R<pb::StatusResponse> {
        Ok(Response::new(self.engine.ask(Command::Status).await?))
    }

    async fn list_notifications(
        &self,
        r: Request<pb::ListNotificationsRequest>,
    ) -> R<pb::ListNotificationsResponse> {
        let req = r.into_inner();
        validate::list_notifications(&req)?;
        let notifications = self
            .engine
            .ask(|t| Command::ListNotifications(req, t))
            .await?;
        Ok(Response::new(pb::ListNotificationsResponse {
            notifications,
        }))
    }

    async fn list_audit(&self, r: Request<pb::ListAuditRequest>) -> R<pb::ListAuditResponse> {
        let req = r.into_inner();
        validate::list_audit(&req)?;
        let entries = self.engine.ask(|t| Command::ListAudit(req, t)).await?;
        Ok(Response::new(pb::ListAuditResponse { entries }))
    }

    async fn prune_preview(&self, req: Request<pb::PruneRequest>) -> R<pb::PruneResponse> {
        let limit = req.into_inner().limit;
        Ok(Response::new(
            self.engine.ask(|t| Command::PrunePreview(limit, t)).await?,
        ))
    }

    async fn prune(&self, _: Request<pb::PruneRequest>) -> R<pb::PruneResponse> {
        Ok(Response::new(self.engine.ask(Command::Prune).await?))
    }
}
