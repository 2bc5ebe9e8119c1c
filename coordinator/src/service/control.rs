//! `ControlService`: thin adapters from requests to engine commands (STYLE.md rule 4). The
//! streaming methods (logs, watch, wait) live in `streams.rs`.

use rota_proto as pb;
use tonic::{Request, Response, Status};

use crate::engine::{Command, EngineHandle};

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
        let runs = self
            .engine
            .ask(|t| Command::Submit(r.into_inner(), t))
            .await?;
        Ok(Response::new(pb::SubmitResponse { runs }))
    }

    async fn create_jobset(&self, r: Request<pb::CreateJobsetRequest>) -> R<pb::Jobset> {
        Ok(Response::new(
            self.engine
                .ask(|t| Command::CreateJobset(r.into_inner(), t))
                .await?,
        ))
    }

    async fn set_parallel(&self, r: Request<pb::SetParallelRequest>) -> R<pb::Jobset> {
        Ok(Response::new(
            self.engine
                .ask(|t| Command::SetParallel(r.into_inner(), t))
                .await?,
        ))
    }

    async fn get_jobset(&self, r: Request<pb::GetJobsetRequest>) -> R<pb::Jobset> {
        Ok(Response::new(
            self.engine
                .ask(|t| Command::GetJobset(r.into_inner().name, t))
                .await?,
        ))
    }

    async fn list_jobsets(&self, _: Request<pb::ListJobsetsRequest>) -> R<pb::ListJobsetsResponse> {
        let jobsets = self.engine.ask(Command::ListJobsets).await?;
        Ok(Response::new(pb::ListJobsetsResponse { jobsets }))
    }

    async fn list_runs(&self, r: Request<pb::ListRunsRequest>) -> R<pb::ListRunsResponse> {
        let runs = self
            .engine
            .ask(|t| Command::ListRuns(r.into_inner(), t))
            .await?;
        Ok(Response::new(pb::ListRunsResponse { runs }))
    }

    async fn get_run(&self, r: Request<pb::RunRef>) -> R<pb::Run> {
        Ok(Response::new(
            self.engine
                .ask(|t| Command::GetRun(r.into_inner().run, t))
                .await?,
        ))
    }

    type LogsStream = super::streams::BoxStream<pb::LogsResponse>;

    async fn logs(&self, r: Request<pb::LogsRequest>) -> R<Self::LogsStream> {
        let stream = super::streams::logs(self.engine.clone(), r.into_inner()).await?;
        Ok(Response::new(super::streams::until_shutdown(
            stream,
            self.shutdown.clone(),
        )))
    }

    async fn cancel(&self, r: Request<pb::RunRef>) -> R<pb::Run> {
        Ok(Response::new(
            self.engine
                .ask(|t| Command::Cancel(r.into_inner().run, t))
                .await?,
        ))
    }

    async fn retry(&self, r: Request<pb::RetryRequest>) -> R<pb::RetryResponse> {
        let runs = self
            .engine
            .ask(|t| Command::Retry(r.into_inner(), t))
            .await?;
        Ok(Response::new(pb::RetryResponse { runs }))
    }

    async fn retire(&self, r: Request<pb::RunRef>) -> R<pb::Run> {
        Ok(Response::new(
            self.engine
                .ask(|t| Command::Retire(r.into_inner().run, t))
                .await?,
        ))
    }

    async fn wait(&self, r: Request<pb::WaitRequest>) -> R<pb::WaitResponse> {
        let mut stop = self.shutdown.clone();
        tokio::select! {
            res = super::streams::wait(&self.engine, r.into_inner()) => Ok(Response::new(res?)),
            _ = stop.wait_for(|s| *s) => Err(Status::unavailable("coordinator is shutting down")),
        }
    }

    type WatchStream = super::streams::BoxStream<pb::RunEvent>;

    async fn watch(&self, r: Request<pb::WatchRequest>) -> R<Self::WatchStream> {
        let stream = super::streams::watch(&self.engine, r.into_inner());
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
        Ok(Response::new(
            self.engine
                .ask(|t| Command::Drain(r.into_inner(), t))
                .await?,
        ))
    }

    async fn list_groups(&self, _: Request<pb::ListGroupsRequest>) -> R<pb::ListGroupsResponse> {
        let groups = self.engine.ask(Command::ListGroups).await?;
        Ok(Response::new(pb::ListGroupsResponse { groups }))
    }

    async fn set_group_max(&self, r: Request<pb::SetGroupMaxRequest>) -> R<pb::Group> {
        Ok(Response::new(
            self.engine
                .ask(|t| Command::SetGroupMax(r.into_inner(), t))
                .await?,
        ))
    }

    async fn apply(&self, r: Request<pb::ApplyRequest>) -> R<pb::ApplyResponse> {
        Ok(Response::new(
            self.engine
                .ask(|t| Command::Apply(r.into_inner(), t))
                .await?,
        ))
    }

    async fn list_jobs(&self, _: Request<pb::ListJobsRequest>) -> R<pb::ListJobsResponse> {
        let jobs = self.engine.ask(Command::ListJobs).await?;
        Ok(Response::new(pb::ListJobsResponse { jobs }))
    }

    async fn trigger(&self, r: Request<pb::TriggerRequest>) -> R<pb::Run> {
        Ok(Response::new(
            self.engine
                .ask(|t| Command::Trigger(r.into_inner(), t))
                .await?,
        ))
    }
}
