//! kestrel-train: training, checkpoints, evaluation and prediction.
//!
//! Laid out by job: `driver/` runs the loop every task shares (start or resume, the step guard,
//! the end of an epoch, checkpoints, the run folder, gradient health); `tasks/` holds one folder
//! per task (classify, segment, multitask), each with its training, evaluation, prediction and
//! data pieces; `optim/`, `loss/` and `report/` serve them all. The CLI uses the entry points
//! exported here; the rest is internal.

mod config;
pub mod distributed;
mod driver;
mod error;
mod infer;
pub mod loss;
mod optim;
mod param_walk;
mod report;
mod tasks;

pub use config::{Augment, Balance, Task, TrainConfig};
pub use driver::checkpoint::Checkpoint;
pub use driver::run_dir;
pub use driver::warm::WarmWorkers;
pub use driver::{Progress, RunOptions};
pub use error::{Result, TrainError};
pub use infer::{InferenceEngine, Int8Plan};
pub use report::write_run_report;
pub use tasks::classify::imagenet::{predict_imagenet, predict_imagenet_on};
pub use tasks::classify::int8::{
    eval_int8, quantize_model, quantize_run, Int8EvalReport, QuantizeRequest, Quantized,
};
pub use tasks::eval::{eval_run, EvalPartial, EvalReport, EvalSplit};
pub use tasks::merge::{merge_parts, Merged};
pub use tasks::predict::{predict_run, predict_run_on, Prediction};
pub use tasks::shard::{
    check_out_folder, eval_shard, predict_imagenet_shard, predict_run_shard, EvalJob, Job,
    ModelFile, Part, PredictJob,
};
pub use tasks::{train, train_replicated, train_run};
