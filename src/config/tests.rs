//! The config module's unit tests: saved configs round-trip, duplicate keys, and the
//! parameter estimate against the built model.

mod duplicate_key_tests {
    use crate::config::{Config, NetworkName, duplicate_key};
    use std::path::Path;

    #[test]
    fn saved_configs_load_back_equal_and_carry_no_other_models_keys() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
        let mut seen = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().and_then(|x| x.to_str()) != Some("yaml") {
                continue;
            }
            let c = Config::load(Some(&p), &[]).unwrap();
            let text = c.to_yaml();
            let back = Config::from_yaml("saved", &text, &[]).unwrap();
            // Everything the model and recipe read survives; what was left out is unused.
            assert_eq!(back.to_yaml(), text, "{}", p.display());
            assert_eq!(back.architecture(), c.architecture(), "{}", p.display());
            assert!(!text.contains("null"), "{text}");
            let video = c.MODEL.level == crate::data::Level::Video;
            let paddle = c.MODEL.head.name == NetworkName::AttentionLstmHead;
            let lstm = c.MODEL.head.name == NetworkName::LstmModel;
            let dbof = c.MODEL.head.name == NetworkName::DbofModel;
            for (key, wanted) in [
                ("lstm_size", paddle),
                ("embedding_size", paddle),
                ("lstm_cells", lstm),
                ("lstm_layers", lstm),
                ("dbof_cluster_size", dbof),
                ("iterations", dbof),
                ("max_frames", !video),
                ("\n    feature_names:", !video),
                ("mean_feature_names", video),
                ("model_name: AttentionLSTM", paddle),
            ] {
                assert_eq!(text.contains(key), wanted, "{}: {key}\n{text}", p.display());
            }
            seen += 1;
        }
        assert!(seen >= 4);
        // Without pruning, the fields a starter model never reads would round-trip as the
        // defaults; with a non-default unused value the saved config still loads the same model.
        let c = Config::from_yaml(
            "t",
            "MODEL:\n    level: video\n    head:\n        name: LogisticModel\n        num_classes: 5\n        feature_dims: [4, 2]\n        lstm_size: 7\n",
            &[],
        )
        .unwrap();
        assert_eq!(c.model_name, "LogisticModel");
        let back = Config::from_yaml("saved", &c.to_yaml(), &[]).unwrap();
        assert_eq!(back.architecture(), c.architecture());
    }

    #[test]
    fn comma_separated_file_paths_become_lists() {
        let c = Config::from_yaml(
            "t",
            "",
            &["DATASET.train.file_path=a.tfrecord, dir/b*.tfrecord".into()],
        )
        .unwrap();
        // -o paths are the working directory's, saved absolute.
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            c.DATASET.train.file_path.unwrap().to_vec(),
            [
                cwd.join("a.tfrecord").display().to_string(),
                cwd.join("dir/b*.tfrecord").display().to_string()
            ]
        );
    }

    #[test]
    fn duplicates_are_found_with_both_lines_and_real_configs_have_none() {
        assert_eq!(
            duplicate_key("MODEL:\n    head:\n        a: 1\n\n        a: 2\n"),
            Some(("MODEL.head.a".into(), 3, 5))
        );
        assert_eq!(
            duplicate_key("epochs: 1\nMODEL:\n  x: 1\nepochs: 2\n"),
            Some(("epochs".into(), 1, 4))
        );
        // Same key under different parents, list items, comments: no duplicate.
        assert_eq!(
            duplicate_key("A:\n  x: 1 # c\nB:\n  x: 2\nL:\n  - name: a\n  - name: b\n"),
            None
        );
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            if e.path().extension().is_some_and(|x| x == "yaml") {
                let t = std::fs::read_to_string(e.path()).unwrap();
                assert_eq!(duplicate_key(&t), None, "{}", e.path().display());
            }
        }
    }
}

mod estimate_tests {
    use crate::config::Config;

    #[test]
    fn parameter_estimate_matches_the_built_model() {
        let _rng = crate::model::TORCH_RNG
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for ov in [
            vec![],
            vec![
                "MODEL.head.lstm_size=8",
                "MODEL.head.embedding_size=4",
                "MODEL.head.fc_out1_size=6",
                "MODEL.head.fc_out2_size=5",
                "MODEL.head.num_classes=7",
            ],
            vec![
                "MODEL.head.name=MoeModel",
                "MODEL.level=video",
                "MODEL.head.num_mixtures=3",
            ],
            vec!["MODEL.head.name=LogisticModel", "MODEL.level=video"],
            vec![
                "MODEL.head.name=FrameLevelLogisticModel",
                "MODEL.head.num_classes=9",
            ],
            vec![
                "MODEL.head.name=LstmModel",
                "MODEL.head.lstm_cells=6",
                "MODEL.head.lstm_layers=3",
                "MODEL.head.num_mixtures=3",
                "MODEL.head.num_classes=7",
            ],
            vec![
                "MODEL.head.name=DbofModel",
                "MODEL.head.dbof_cluster_size=12",
                "MODEL.head.dbof_hidden_size=5",
                "MODEL.head.num_classes=7",
            ],
            vec![
                "MODEL.head.name=DbofModel",
                "MODEL.head.dbof_cluster_size=12",
                "MODEL.head.dbof_hidden_size=5",
                "MODEL.head.dbof_add_batch_norm=false",
                "MODEL.head.num_classes=7",
            ],
            vec![
                "MODEL.head.name=NeXtVLADHead",
                "MODEL.head.feature_dims=[12, 6]",
                "MODEL.head.cluster_size=5",
                "MODEL.head.hidden_size=16",
                "MODEL.head.groups=3",
                "MODEL.head.expansion=2",
                "MODEL.head.gating_reduction=4",
                "MODEL.head.num_classes=7",
            ],
            vec![
                "MODEL.head.name=AttentionClusterHead",
                "MODEL.head.feature_dims=[12, 6]",
                "MODEL.head.cluster_nums=[3, 2]",
                "MODEL.head.fc1_size=9",
                "MODEL.head.fc2_size=11",
                "MODEL.head.num_classes=7",
            ],
        ] {
            let ov: Vec<String> = ov.iter().map(|s| s.to_string()).collect();
            let cfg = Config::from_yaml("t", "", &ov).unwrap();
            let m =
                crate::model::Model::new(cfg.architecture(), tch::Device::Cpu, tch::Kind::Float);
            assert_eq!(
                cfg.parameter_estimate(),
                m.num_parameters() as u64,
                "{ov:?}"
            );
        }
    }
}
