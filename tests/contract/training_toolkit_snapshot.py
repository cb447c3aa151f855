"""What sagemaker-training 5.1.4 (Environment().to_env_vars()) gave for the /opt/ml tree of
test_training_units.comparison_tree, taken on a machine with 2 CPUs. {base} is the tree's root and
{tarball} the sourcedir.tar.gz next to it. The tests use it only when sagemaker-training cannot be
imported; regenerate it from the toolkit when the tree changes."""

SNAPSHOT_CPUS = 2

SNAPSHOT_ENV_VARS = {
    "SM_CHANNELS": '["train","validation"]',
    "SM_CHANNEL_TRAIN": "{base}/input/data/train",
    "SM_CHANNEL_VALIDATION": "{base}/input/data/validation",
    "SM_CURRENT_HOST": "algo-2",
    "SM_CURRENT_INSTANCE_GROUP": "homogeneousCluster",
    "SM_CURRENT_INSTANCE_GROUP_HOSTS": '["algo-1","algo-2","algo-3"]',
    "SM_CURRENT_INSTANCE_TYPE": "ml.m5.xlarge",
    "SM_DISTRIBUTION_INSTANCE_GROUPS": "[]",
    "SM_FRAMEWORK_MODULE": "",
    "SM_FRAMEWORK_PARAMS": '{"sagemaker_custom_flag":true}',
    "SM_HOSTS": '["algo-1","algo-2","algo-3"]',
    "SM_HPS": '{"Zeta":"upper","alpha":1.0,"big":12345678901234567890,"empty":"","epochs":10,"flag":true,"huge":1e+300,"k":"short","learning_rate":0.001,"list":[1,2.5,"a",true,null,"it\'s"],"name":"rpart '
    'model","nothing":null,"obj":{"a":"x","b":[1,2],"c":{"d":null}},"off":false,"quote":"it\'s '
    '\\"quoted\\"","raw":"just text","raw_brace":"{not '
    'json","raw_number":"1.2.3","tiny":1e-07,"unicode":"caf\\u00e9 \\u00fc"}',
    "SM_HP_ALPHA": "1.0",
    "SM_HP_BIG": "12345678901234567890",
    "SM_HP_EMPTY": "",
    "SM_HP_EPOCHS": "10",
    "SM_HP_FLAG": "true",
    "SM_HP_HUGE": "1e+300",
    "SM_HP_K": "short",
    "SM_HP_LEARNING_RATE": "0.001",
    "SM_HP_LIST": '[1,2.5,"a",true,null,"it\'s"]',
    "SM_HP_NAME": "rpart model",
    "SM_HP_NOTHING": "",
    "SM_HP_OBJ": '{"a":"x","b":[1,2],"c":{"d":null}}',
    "SM_HP_OFF": "false",
    "SM_HP_QUOTE": 'it\'s "quoted"',
    "SM_HP_RAW": "just text",
    "SM_HP_RAW_BRACE": "{not json",
    "SM_HP_RAW_NUMBER": "1.2.3",
    "SM_HP_TINY": "1e-07",
    "SM_HP_UNICODE": "café ü",
    "SM_HP_ZETA": "upper",
    "SM_INPUT_CONFIG_DIR": "{base}/input/config",
    "SM_INPUT_DATA_CONFIG": '{"train":{"ContentType":"text/csv","RecordWrapperType":"None","S3DistributionType":"FullyReplicated","TrainingInputMode":"File"},"validation":{"RecordWrapperType":"None","S3DistributionType":"ShardedByS3Key","TrainingInputMode":"File"}}',
    "SM_INPUT_DIR": "{base}/input",
    "SM_INSTANCE_GROUPS": '["homogeneousCluster"]',
    "SM_INSTANCE_GROUPS_DICT": '{"homogeneousCluster":{"hosts":["algo-1","algo-2","algo-3"],"instance_group_name":"homogeneousCluster","instance_type":"ml.m5.xlarge"}}',
    "SM_IS_HETERO": "false",
    "SM_LOG_LEVEL": "20",
    "SM_MODEL_DIR": "{base}/model",
    "SM_MODULE_DIR": "file://{tarball}",
    "SM_MODULE_NAME": "dump.R",
    "SM_NETWORK_INTERFACE_NAME": "eth1",
    "SM_NUM_CPUS": "2",
    "SM_NUM_GPUS": "0",
    "SM_NUM_NEURONS": "0",
    "SM_OUTPUT_DATA_DIR": "{base}/output/data",
    "SM_OUTPUT_DIR": "{base}/output",
    "SM_OUTPUT_INTERMEDIATE_DIR": "{base}/output/intermediate",
    "SM_RESOURCE_CONFIG": '{"current_group_name":"homogeneousCluster","current_host":"algo-2","current_instance_type":"ml.m5.xlarge","hosts":["algo-1","algo-2","algo-3"],"instance_groups":[{"hosts":["algo-1","algo-2","algo-3"],"instance_group_name":"homogeneousCluster","instance_type":"ml.m5.xlarge"}],"network_interface_name":"eth1"}',
    "SM_TRAINING_ENV": '{"additional_framework_parameters":{"sagemaker_custom_flag":true},"channel_input_dirs":{"train":"{base}/input/data/train","validation":"{base}/input/data/validation"},"current_host":"algo-2","current_instance_group":"homogeneousCluster","current_instance_group_hosts":["algo-1","algo-2","algo-3"],"current_instance_type":"ml.m5.xlarge","distribution_hosts":[],"distribution_instance_groups":[],"framework_module":null,"hosts":["algo-1","algo-2","algo-3"],"hyperparameters":{"Zeta":"upper","alpha":1.0,"big":12345678901234567890,"empty":"","epochs":10,"flag":true,"huge":1e+300,"k":"short","learning_rate":0.001,"list":[1,2.5,"a",true,null,"it\'s"],"name":"rpart '
    'model","nothing":null,"obj":{"a":"x","b":[1,2],"c":{"d":null}},"off":false,"quote":"it\'s '
    '\\"quoted\\"","raw":"just text","raw_brace":"{not '
    'json","raw_number":"1.2.3","tiny":1e-07,"unicode":"caf\\u00e9 '
    '\\u00fc"},"input_config_dir":"{base}/input/config","input_data_config":{"train":{"ContentType":"text/csv","RecordWrapperType":"None","S3DistributionType":"FullyReplicated","TrainingInputMode":"File"},"validation":{"RecordWrapperType":"None","S3DistributionType":"ShardedByS3Key","TrainingInputMode":"File"}},"input_dir":"{base}/input","instance_groups":["homogeneousCluster"],"instance_groups_dict":{"homogeneousCluster":{"hosts":["algo-1","algo-2","algo-3"],"instance_group_name":"homogeneousCluster","instance_type":"ml.m5.xlarge"}},"is_hetero":false,"is_master":false,"is_modelparallel_enabled":null,"is_smddpmprun_installed":false,"is_smddprun_installed":false,"job_name":"job-1","log_level":20,"master_hostname":"algo-1","model_dir":"{base}/model","module_dir":"file://{tarball}","module_name":"dump.R","network_interface_name":"eth1","num_cpus":2,"num_gpus":0,"num_neurons":0,"output_data_dir":"{base}/output/data","output_dir":"{base}/output","output_intermediate_dir":"{base}/output/intermediate","resource_config":{"current_group_name":"homogeneousCluster","current_host":"algo-2","current_instance_type":"ml.m5.xlarge","hosts":["algo-1","algo-2","algo-3"],"instance_groups":[{"hosts":["algo-1","algo-2","algo-3"],"instance_group_name":"homogeneousCluster","instance_type":"ml.m5.xlarge"}],"network_interface_name":"eth1"},"topology":[],"user_entry_point":"dump.R"}',
    "SM_USER_ARGS": '["--Zeta","upper","--alpha","1.0","--big","12345678901234567890","--empty","","--epochs","10","--flag","True","--huge","1e+300","-k","short","--learning_rate","0.001","--list","[1, '
    '2.5, \'a\', True, None, \\"it\'s\\"]","--name","rpart '
    'model","--nothing","","--obj","a=x,b=[1, 2],c={\'d\': '
    'None}","--off","False","--quote","it\'s \\"quoted\\"","--raw","just '
    'text","--raw_brace","{not '
    'json","--raw_number","1.2.3","--tiny","1e-07","--unicode","caf\\u00e9 \\u00fc"]',
    "SM_USER_ENTRY_POINT": "dump.R",
}
