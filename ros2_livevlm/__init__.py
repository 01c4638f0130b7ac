"""ros2_livevlm: a robot's bounded, recallable visual memory (LiveVLM: VSB + PaR) as a ROS 2 node."""
