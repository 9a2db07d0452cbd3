//! kestrel-train: the training loop, checkpoints, evaluation and prediction.

pub mod balance;
pub mod checkpoint;
pub mod config;
pub mod error;
pub mod evaluate;
pub mod grad_health;
pub mod infer;
pub mod loss;
pub mod multitask_eval;
pub mod multitask_step;
pub mod multitask_trainer;
pub mod optim;
pub mod regularize;
pub mod report;
pub mod resume;
pub mod run_dir;
pub mod schedule;
pub mod seg_eval;
pub mod seg_predict;
pub mod seg_set;
pub mod seg_trainer;
pub mod tensor_set;
pub mod train_loop;
pub mod trainer;
pub mod weighting;

pub use config::{Augment, Balance, Task, TrainConfig};
pub use error::{Result, TrainError};
pub use train_loop::{Progress, RunOptions};
pub use trainer::{train, train_run};
pub mod eval_run;
pub mod predict;
pub mod predict_imagenet;
pub use eval_run::{eval_run, EvalReport, EvalSplit};
pub use infer::InferenceEngine;
pub use predict::{predict_run, predict_run_on, Prediction};
pub use predict_imagenet::{predict_imagenet, predict_imagenet_on};
