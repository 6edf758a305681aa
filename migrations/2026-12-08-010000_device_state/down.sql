DROP TABLE device_state;
