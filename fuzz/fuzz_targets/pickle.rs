//! The pickle machine on arbitrary bytes, with torch's persistent ids, then the state-dict
//! interpretation of whatever it built (storages read as zero-filled bytes of any length).
#![no_main]
use kestrel_fuzz::import::budget::Budget;
use kestrel_fuzz::import::pickle::unpickle;
use kestrel_fuzz::import::tensor_view::state_dict_from_pickle;
use kestrel_fuzz::import::torch_globals::storage_from_pid;
use libfuzzer_sys::fuzz_target;

static ZEROS: [u8; 4096] = [0; 4096];

fuzz_target!(|data: &[u8]| {
    if let Ok((root, used)) = unpickle(data, &mut storage_from_pid) {
        assert!(used <= data.len());
        let mut bytes_of = |_: &_| Ok(&ZEROS[..]);
        let _ = state_dict_from_pickle(&root, &mut bytes_of, &mut Budget::for_file(data.len()));
    }
});
