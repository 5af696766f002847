//! Test plugin built against a future, incompatible contract
//! (`sglab:strategy@0.3.0`). The host must refuse it at load time, naming
//! the version it found and the one it supports.

#[cfg(target_arch = "wasm32")]
mod bindings {
    wit_bindgen::generate!({
        inline: "
            package sglab:strategy@0.3.0;
            interface router {
                info: func() -> string;
            }
            world future-router {
                export router;
            }
        ",
        world: "future-router",
    });

    struct Future;

    impl exports::sglab::strategy::router::Guest for Future {
        fn info() -> String {
            "future".to_owned()
        }
    }

    export!(Future);
}
